//! TLS end to end: the real binary pushing to a Loki behind TLS, with
//! certificates made in the test (rcgen).
//!
//! The receiver is the fake Loki of `support/receiver.rs` behind a TLS
//! front ([`TlsFront`], tokio-rustls) that terminates TLS — requiring a
//! client certificate when asked — and forwards the plain bytes. Cases:
//! a private CA via `tls_config.ca_file` is accepted; an unknown CA, an
//! expired certificate and a wrong host name are each refused, and the
//! agent's log says which; `tls_config.server_name` makes the wrong-host
//! case connect; a client certificate (`cert_file`/`key_file`) is accepted
//! by a receiver that requires one, and its absence refused;
//! `insecure_skip_verify: true` delivers despite an unknown CA and warns
//! once at start-up; an `http` URL redirected (308) to the TLS front is
//! followed there, with the system's CA certificates (`SSL_CERT_FILE`)
//! loaded only then.
//!
//! Nothing here measures time: every wait polls with a generous deadline.

#[path = "support/agent.rs"]
mod agent;
#[path = "support/receiver.rs"]
mod receiver;

use agent::{cri_line, now_ns, wait, Agent, PodLog, Setup};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SanType,
};
use receiver::Receiver;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(30);

// ------------------------------------------------------------ certificates

/// A certificate authority made for one test.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A leaf certificate and its key, in PEM.
struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
        Ca { issuer }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// A certificate for `dns` names and 127.0.0.1 (`ip`), valid now unless
    /// `expired`.
    fn leaf(&self, dns: &[&str], ip: bool, expired: bool) -> Leaf {
        let mut p =
            CertificateParams::new(dns.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        if ip {
            p.subject_alt_names
                .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        }
        p.distinguished_name.push(
            DnType::CommonName,
            dns.first().copied().unwrap_or("127.0.0.1"),
        );
        if expired {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
            key_der: key.serialize_der(),
        }
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

// ------------------------------------------------------------- TLS front

/// Terminates TLS on 127.0.0.1 and forwards the plain bytes to `backend`.
/// Dropping it stops it.
struct TlsFront {
    addr: SocketAddr,
    /// One entry per handshake: `Ok` or the server's error.
    handshakes: Arc<Mutex<Vec<Result<(), String>>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TlsFront {
    /// Serves `leaf`; with `client_ca`, a client certificate signed by it
    /// is required.
    fn start(leaf: &Leaf, client_ca: Option<&Ca>, backend: SocketAddr) -> TlsFront {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match client_ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                roots.add(ca.der()).unwrap();
                let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .unwrap();
                builder.with_client_cert_verifier(v)
            }
            None => builder.with_no_client_auth(),
        };
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf.key_der.clone()));
        let mut cfg = builder
            .with_single_cert(vec![leaf.der.clone()], key)
            .unwrap();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let handshakes = Arc::new(Mutex::new(Vec::new()));
        let seen = handshakes.clone();
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let thread = std::thread::spawn(move || {
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let (tcp, _) = tokio::select! {
                        _ = &mut rx => return,
                        a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
                    };
                    let (acceptor, seen) = (acceptor.clone(), seen.clone());
                    tokio::spawn(async move {
                        let mut tls = match acceptor.accept(tcp).await {
                            Ok(t) => t,
                            Err(e) => {
                                seen.lock().unwrap().push(Err(e.to_string()));
                                return;
                            }
                        };
                        seen.lock().unwrap().push(Ok(()));
                        if let Ok(mut plain) = tokio::net::TcpStream::connect(backend).await {
                            let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                        }
                    });
                }
            })
        });
        TlsFront {
            addr,
            handshakes,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    fn url(&self, host: &str) -> String {
        format!("https://{host}:{}/loki/api/v1/push", self.addr.port())
    }

    fn handshakes(&self) -> Vec<Result<(), String>> {
        self.handshakes.lock().unwrap().clone()
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ------------------------------------------------------------------- runs

/// One agent pushing one pod line to a receiver behind a [`TlsFront`].
struct Case {
    rx: Receiver,
    front: TlsFront,
    agent: Agent,
    _dir: tempfile::TempDir,
}

/// The receiver serves `leaf` (requiring a client certificate from
/// `client_ca` when given); the agent trusts `trusted` (`ca_file`) and has
/// `extra` lines in its `tls_config`. The URL's host is 127.0.0.1.
fn case(leaf: &Leaf, client_ca: Option<&Ca>, trusted: Option<&Ca>, extra: &[(&str, &str)]) -> Case {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start();
    let front = TlsFront::start(leaf, client_ca, rx.addr());
    let mut tls = String::new();
    if let Some(ca) = trusted {
        let f = write(dir.path(), "ca.pem", &ca.pem());
        tls.push_str(&format!("      ca_file: {}\n", f.display()));
    }
    for (k, v) in extra {
        tls.push_str(&format!("      {k}: {v}\n"));
    }
    let mut setup = Setup::new(dir.path(), &front.url("127.0.0.1"));
    setup.client_extra = format!("    tls_config:\n{tls}");
    let mut log = PodLog::create(&setup.logs, "web", "app");
    log.write(&cri_line(now_ns(), "stdout", false, "hello over tls"));
    let agent = Agent::start(dir.path(), &setup);
    Case {
        rx,
        front,
        agent,
        _dir: dir,
    }
}

impl Case {
    fn delivered(&self) -> bool {
        self.rx.wait_until(DEADLINE, |r| {
            r.lines().iter().any(|l| l == "hello over tls")
        })
    }

    /// Waits for `what` in the agent's log; on failure shows the log.
    fn logged(&self, what: &str) -> String {
        let ok = wait(DEADLINE, || self.agent.log().contains(what));
        let log = self.agent.log();
        assert!(ok, "agent never logged {what:?}:\n{log}");
        log
    }

    /// Refused: nothing delivered, and the log names `which` of the
    /// verification failures and none of the others.
    fn refused_with(&self, which: &str) {
        let log = self.logged(which);
        for other in FAILURES.iter().filter(|f| **f != which) {
            assert!(
                !log.contains(other),
                "{which:?} also logged as {other:?}:\n{log}"
            );
        }
        assert_eq!(
            self.rx.count(),
            0,
            "a line went through a refused connection"
        );
    }
}

/// The three verification failures, each told apart from the others.
const FAILURES: [&str; 3] = [
    "unknown certificate authority",
    "certificate has expired",
    "host name mismatch",
];

#[test]
fn private_ca_via_ca_file_is_accepted() {
    let ca = Ca::new("tailtrace test CA");
    let c = case(&ca.leaf(&["localhost"], true, false), None, Some(&ca), &[]);
    assert!(c.delivered(), "not delivered:\n{}", c.agent.log());
    assert!(c.front.handshakes().iter().all(Result::is_ok));
}

#[test]
fn unknown_ca_is_refused_and_said_so() {
    let (ca, other) = (Ca::new("server CA"), Ca::new("another CA"));
    case(&ca.leaf(&[], true, false), None, Some(&other), &[])
        .refused_with("unknown certificate authority");
}

#[test]
fn expired_certificate_is_refused_and_said_so() {
    let ca = Ca::new("server CA");
    case(&ca.leaf(&[], true, true), None, Some(&ca), &[]).refused_with("certificate has expired");
}

#[test]
fn wrong_host_is_refused_and_server_name_overrides_it() {
    let ca = Ca::new("server CA");
    let leaf = ca.leaf(&["loki.test"], false, false);
    case(&leaf, None, Some(&ca), &[]).refused_with("host name mismatch");
    let c = case(&leaf, None, Some(&ca), &[("server_name", "loki.test")]);
    assert!(
        c.delivered(),
        "not delivered with server_name:\n{}",
        c.agent.log()
    );
}

#[test]
fn client_certificates_are_sent_when_required() {
    let (server_ca, client_ca) = (Ca::new("server CA"), Ca::new("client CA"));
    let tmp = tempfile::tempdir().unwrap();
    let client = client_ca.leaf(&["tailtrace"], false, false);
    let cert_file = write(tmp.path(), "client.pem", &client.cert_pem);
    let key_file = write(tmp.path(), "client.key", &client.key_pem);
    let (cert_file, key_file) = (
        cert_file.display().to_string(),
        key_file.display().to_string(),
    );
    let leaf = server_ca.leaf(&[], true, false);

    let c = case(
        &leaf,
        Some(&client_ca),
        Some(&server_ca),
        &[("cert_file", &cert_file), ("key_file", &key_file)],
    );
    assert!(
        c.delivered(),
        "not delivered with a client certificate:\n{}",
        c.agent.log()
    );

    let c = case(&leaf, Some(&client_ca), Some(&server_ca), &[]);
    assert!(
        wait(DEADLINE, || c.front.handshakes().iter().any(Result::is_err)),
        "the receiver never refused a handshake"
    );
    c.logged("may require a client certificate");
    assert_eq!(
        c.rx.count(),
        0,
        "a line went through without a client certificate"
    );
}

#[test]
fn insecure_skip_verify_delivers_and_warns_once() {
    // Unknown CA, expired, and for another name: nothing is checked.
    let ca = Ca::new("nobody knows this CA");
    let c = case(
        &ca.leaf(&["elsewhere.test"], false, true),
        None,
        None,
        &[("insecure_skip_verify", "true")],
    );
    assert!(c.delivered(), "not delivered:\n{}", c.agent.log());
    let log = c.agent.log();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("insecure_skip_verify is true"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(warnings[0].contains("WARN"), "{log}");
}

/// Answers every request on 127.0.0.1 with `308` to `location`, after
/// reading it whole; counts the requests.
struct Redirector {
    addr: SocketAddr,
    served: Arc<Mutex<usize>>,
}

impl Redirector {
    fn start(location: String) -> Redirector {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let served = Arc::new(Mutex::new(0));
        let count = served.clone();
        // Detached: it ends with the test process.
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut r = BufReader::new(conn.try_clone().unwrap());
                let mut len = 0usize;
                let mut line = String::new();
                while r.read_line(&mut line).is_ok_and(|n| n > 0) {
                    let l = line.trim_end().to_ascii_lowercase();
                    if l.is_empty() {
                        break;
                    }
                    if let Some(v) = l.strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                    line.clear();
                }
                let mut body = vec![0u8; len];
                if r.read_exact(&mut body).is_err() {
                    continue;
                }
                *count.lock().unwrap() += 1;
                let _ = write!(
                    conn,
                    "HTTP/1.1 308 Permanent Redirect\r\nLocation: {location}\r\n\
                     Content-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        });
        Redirector { addr, served }
    }

    fn url(&self) -> String {
        format!("http://{}/loki/api/v1/push", self.addr)
    }
}

/// A client for an `http` URL is built without the system's CA
/// certificates; a 308 to `https` makes it load them (here the test CA,
/// through `SSL_CERT_FILE`, which the system's certificate loading honours)
/// and follow the redirect, as Promtail follows it. Without the reload the
/// push would end at the 308 and nothing would be delivered.
#[test]
fn an_http_url_redirected_to_https_is_followed_with_the_system_roots() {
    let ca = Ca::new("system CA for the test");
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start();
    let front = TlsFront::start(&ca.leaf(&["localhost"], true, false), None, rx.addr());
    let redirect = Redirector::start(front.url("127.0.0.1"));
    let roots = write(dir.path(), "system-ca.pem", &ca.pem());
    let mut setup = Setup::new(dir.path(), &redirect.url());
    setup.env = vec![("SSL_CERT_FILE".into(), roots.display().to_string())];
    let mut log = PodLog::create(&setup.logs, "web", "app");
    log.write(&cri_line(now_ns(), "stdout", false, "hello over tls"));
    let agent = Agent::start(dir.path(), &setup);
    let delivered = rx.wait_until(DEADLINE, |r| {
        r.lines().iter().any(|l| l == "hello over tls")
    });
    assert!(delivered, "not delivered:\n{}", agent.log());
    assert!(
        *redirect.served.lock().unwrap() >= 1,
        "the redirect was not asked"
    );
    assert!(front.handshakes().iter().all(Result::is_ok));
    assert!(
        agent
            .log()
            .contains("redirected to https: loading the system's CA certificates"),
        "{}",
        agent.log()
    );
}
