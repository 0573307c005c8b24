//! The HTTP side of a client: one reqwest client per configured Loki, and
//! one push attempt at a time.
//!
//! Owns: [`Pusher`] — built from a [`ClientConfig`] (URL, `headers`, basic
//! or bearer auth, `proxy_url`, `tls_config`, `timeout`), every config
//! problem reported by [`Pusher::new`] as an error naming the key — and
//! [`Pusher::push`], which sends one [`Body`] and reports an [`Outcome`]
//! (status plus the first line, ≤1024 bytes, of an error answer; or the
//! transport error with its causes).
//!
//! Headers: `Content-Type`/`Content-Encoding` from the body, `User-Agent:
//! tailtrace/<version>`, `X-Scope-OrgID` only when a tenant is set (a
//! configured header of that name is ignored, as in Promtail). Secrets from
//! files (`password_file`, `bearer_token_file`) are re-read before each
//! attempt, so rotated tokens are picked up; if a later read fails the last
//! good value is kept.
//!
//! `tls_config.server_name` (verify the certificate for another name than
//! the URL's host) is done by addressing the request to `server_name` and
//! resolving that name to the URL's real host, with the `Host` header kept
//! as the URL's; HTTP/1.1 is then forced so that `Host` is what the server
//! sees. Through a `proxy_url` the proxy resolves `server_name` itself.
//!
//! A TLS failure is reported with what failed (see [`super::tls`]);
//! `insecure_skip_verify` is warned about once, when the client is built.
//!
//! A client that has no TLS in sight — an `http` URL, no `ca_file`, no
//! `https` proxy — is built without the system's CA certificates: reqwest
//! reads and parses every one of them when a client is built (~19 million
//! instructions at each start, ~0.3 MiB of heap kept). Redirects are
//! followed as Promtail follows them (up to 10); one that leads to an
//! `https` URL stops that client, and the push is sent again, at once, by
//! a client built with the certificates (once, shared by the clones), which
//! follows it.
//!
//! Environment proxies (`HTTP_PROXY`…) are not used, as in Promtail.
//!
//! Must never: retry on its own (the caller decides; sending a push again
//! to follow a redirect to `https`, above, is following it), or log secrets: the
//! credentials are [`Secret`]s, and transport errors lose their URL.

use super::backoff::Outcome;
use super::encode::Body;
use crate::config::secret::redact_url;
use crate::config::{ClientConfig, Secret};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE, HOST};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// Bytes of an error answer kept for the log (Promtail's limit).
pub const MAX_ERROR_BODY: usize = 1024;

const TENANT_HEADER: &str = "X-Scope-OrgID";

/// A credential given inline or in a file re-read on use; either way held
/// as a [`Secret`], which never prints.
#[derive(Clone)]
enum Credential {
    Inline(Secret),
    File { path: PathBuf, last: Secret },
}

impl Credential {
    fn file(path: &PathBuf, key: &str) -> Result<Credential, String> {
        let last = read_secret(path).map_err(|e| format!("{key}: {e}"))?;
        Ok(Credential::File {
            path: path.clone(),
            last,
        })
    }

    fn get(&mut self) -> &str {
        match self {
            Credential::Inline(s) => s.expose(),
            Credential::File { path, last } => {
                match read_secret(path) {
                    Ok(s) => *last = s,
                    Err(e) => tracing::debug!(error = %e, "keeping the last secret read"),
                }
                last.expose()
            }
        }
    }
}

/// A secret file's contents, trimmed. Errors name the file, never its
/// contents.
fn read_secret(path: &PathBuf) -> Result<Secret, String> {
    std::fs::read_to_string(path)
        .map(|s| Secret::from(s.trim()))
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
}

#[derive(Clone)]
enum Auth {
    None,
    Basic { user: String, password: Credential },
    Bearer(Credential),
}

/// Sends push requests to one Loki. See the module docs. Clones share
/// the connection pool (one per tenant lane).
#[derive(Clone)]
pub struct Pusher {
    client: reqwest::Client,
    url: reqwest::Url,
    auth: Auth,
    /// The URL's authority, sent as `Host` when `server_name` rewrote it.
    host_header: Option<HeaderValue>,
    /// `Some` while `client` lacks the system's CA certificates (see the
    /// module docs).
    lazy_tls: Option<Arc<LazyTls>>,
}

/// The client with the system's CA certificates, built from `cfg` the first
/// time a redirect leads to `https`, for every clone of the [`Pusher`].
struct LazyTls {
    cfg: ClientConfig,
    built: std::sync::OnceLock<reqwest::Client>,
}

/// Whether a client for `cfg` never makes a TLS connection unless
/// redirected: an `http` URL, no `ca_file`, no proxy or an `http` one.
fn plain(cfg: &ClientConfig, url: &reqwest::Url) -> bool {
    let proxy_plain = match &cfg.proxy_url {
        Some(p) if !p.is_empty() => p
            .expose()
            .get(..7)
            .is_some_and(|s| s.eq_ignore_ascii_case("http://")),
        _ => true,
    };
    url.scheme() == "http" && cfg.tls_config.ca_file.is_none() && proxy_plain
}

/// Redirects for a client without CA certificates: as reqwest's default
/// (10 at most), but one to `https` is not followed (the caller sees the
/// 3xx answer).
fn plain_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        if attempt.url().scheme() == "https" {
            attempt.stop()
        } else if attempt.previous().len() >= 10 {
            attempt.error("too many redirects")
        } else {
            attempt.follow()
        }
    })
}

/// Whether `resp` is a redirect to an `https` URL.
fn redirects_to_https(resp: &reqwest::Response) -> bool {
    resp.status().is_redirection()
        && resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .and_then(|l| l.get(..8))
            .is_some_and(|l| l.eq_ignore_ascii_case("https://"))
}

/// Promtail's `host` metric label: the URL's `host[:port]` (the port only
/// when not the scheme's default), like Go's `URL.Host`.
pub fn host_label(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or("");
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

/// Parses and checks a client URL. Errors quote it with its password
/// masked.
pub fn parse_url(url: &str) -> Result<reqwest::Url, String> {
    let shown = || redact_url(url);
    let u = reqwest::Url::parse(url).map_err(|e| format!("url {:?}: {e}", shown()))?;
    if u.scheme() != "http" && u.scheme() != "https" {
        return Err(format!("url {:?}: scheme must be http or https", shown()));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(format!("url {:?}: no host", shown()));
    }
    Ok(u)
}

fn read_file(path: &PathBuf, key: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{key}: cannot read {}: {e}", path.display()))
}

impl Pusher {
    pub fn new(cfg: &ClientConfig) -> Result<Pusher, String> {
        let url = parse_url(cfg.url.expose())?;
        if !plain(cfg, &url) {
            return Self::build(cfg, true);
        }
        let mut p = Self::build(cfg, false)?;
        p.lazy_tls = Some(Arc::new(LazyTls {
            cfg: cfg.clone(),
            built: std::sync::OnceLock::new(),
        }));
        Ok(p)
    }

    /// Whether the client was built without the system's CA certificates.
    pub fn lacks_system_roots(&self) -> bool {
        self.lazy_tls.is_some()
    }

    /// The client for `cfg`; without the system's CA certificates unless
    /// `roots` (see [`plain`]).
    fn build(cfg: &ClientConfig, roots: bool) -> Result<Pusher, String> {
        let mut url = parse_url(cfg.url.expose())?;
        let mut b = reqwest::Client::builder()
            .user_agent(concat!("tailtrace/", env!("CARGO_PKG_VERSION")))
            .default_headers(default_headers(cfg)?);
        if !cfg.timeout.is_zero() {
            b = b.timeout(cfg.timeout);
        }
        b = match &cfg.proxy_url {
            Some(p) if !p.is_empty() => b.proxy(
                reqwest::Proxy::all(p.expose())
                    .map_err(|e| redact_url(&format!("proxy_url {p:?}: {e}")))?,
            ),
            _ => b.no_proxy(),
        };
        let tls = &cfg.tls_config;
        if let Some(ca) = &tls.ca_file {
            let pem = read_file(ca, "tls_config.ca_file")?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("tls_config.ca_file {}: {e}", ca.display()))?;
            if certs.is_empty() {
                return Err(format!(
                    "tls_config.ca_file {}: no PEM certificate found",
                    ca.display()
                ));
            }
            // Like Go's RootCAs: only the given CAs are trusted.
            b = b.tls_built_in_root_certs(false);
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        match (&tls.cert_file, &tls.key_file) {
            (Some(c), Some(k)) => {
                let mut pem = read_file(c, "tls_config.cert_file")?;
                pem.push(b'\n');
                pem.extend_from_slice(&read_file(k, "tls_config.key_file")?);
                let id = reqwest::Identity::from_pem(&pem)
                    .map_err(|e| format!("tls_config.cert_file/key_file {}: {e}", c.display()))?;
                b = b.identity(id);
            }
            (None, None) => {}
            _ => {
                return Err("tls_config: cert_file and key_file must be given together".to_string())
            }
        }
        if tls.insecure_skip_verify {
            tracing::warn!(
                host = %host_label(&url),
                "tls_config.insecure_skip_verify is true: the server's certificate is not \
                 verified, so anyone on the path can read and change what is sent"
            );
            b = b.danger_accept_invalid_certs(true);
        }
        let mut host_header = None;
        if let Some(sn) = tls.server_name.as_deref().filter(|s| !s.is_empty()) {
            let real = url.host_str().unwrap_or("").to_string();
            if url.scheme() == "https" && sn != real {
                if sn.parse::<std::net::IpAddr>().is_ok() {
                    return Err(format!(
                        "tls_config.server_name {sn:?}: an IP address is not supported"
                    ));
                }
                host_header = Some(
                    HeaderValue::from_str(&host_label(&url)).map_err(|e| format!("url: {e}"))?,
                );
                url.set_host(Some(sn))
                    .map_err(|e| format!("tls_config.server_name {sn:?}: {e}"))?;
                let real = real
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string();
                b = b.http1_only().dns_resolver(Arc::new(Redirect {
                    name: sn.to_ascii_lowercase(),
                    target: real,
                }));
            }
        }
        if !roots {
            b = b.tls_built_in_root_certs(false).redirect(plain_redirects());
        }
        let auth = auth(cfg)?;
        let client = b.build().map_err(|e| format!("client: {}", chain(&e)))?;
        Ok(Pusher {
            client,
            url,
            auth,
            host_header,
            lazy_tls: None,
        })
    }

    /// One push attempt.
    pub async fn push(&mut self, tenant: Option<&str>, body: &Body) -> Outcome {
        let mut resp = match self.send(tenant, body).await {
            Ok(r) => r,
            Err(o) => return o,
        };
        if let Some(lazy) = self.lazy_tls.take_if(|_| redirects_to_https(&resp)) {
            match lazy.built.get() {
                Some(c) => self.client = c.clone(),
                None => {
                    tracing::info!(
                        host = %host_label(&self.url),
                        "redirected to https: loading the system's CA certificates"
                    );
                    // A failure (a credential file unreadable for a moment)
                    // is not kept: the next attempt builds again.
                    match Self::build(&lazy.cfg, true) {
                        Ok(p) => self.client = lazy.built.get_or_init(|| p.client).clone(),
                        Err(e) => {
                            self.lazy_tls = Some(lazy);
                            return Outcome::Transport(format!("redirected to https: {e}"));
                        }
                    }
                }
            }
            resp = match self.send(tenant, body).await {
                Ok(r) => r,
                Err(o) => return o,
            };
        }
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            return Outcome::Status(status, String::new());
        }
        Outcome::Status(status, first_line(&mut resp).await)
    }

    /// Sends the request once; a transport failure is the outcome.
    async fn send(
        &mut self,
        tenant: Option<&str>,
        body: &Body,
    ) -> Result<reqwest::Response, Outcome> {
        let mut req = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, body.content_type);
        if let Some(ce) = body.content_encoding {
            req = req.header(CONTENT_ENCODING, ce);
        }
        if let Some(t) = tenant {
            match HeaderValue::from_str(t) {
                Ok(v) => req = req.header(TENANT_HEADER, v),
                Err(_) => {
                    return Err(Outcome::Invalid(format!(
                        "tenant id {t:?} is not a valid header value"
                    )))
                }
            }
        }
        if let Some(h) = &self.host_header {
            req = req.header(HOST, h.clone());
        }
        req = match &mut self.auth {
            Auth::None => req,
            Auth::Basic { user, password } => req.basic_auth(user.as_str(), Some(password.get())),
            Auth::Bearer(t) => req.bearer_auth(t.get()),
        };
        match req.body(body.bytes.clone()).send().await {
            Ok(r) => Ok(r),
            // reqwest's errors quote the URL, credentials included: drop it
            // (the caller logs the client's host), and mask any URL a cause
            // quotes (a proxy's). A TLS failure says what failed first.
            Err(e) => {
                let e = e.without_url();
                let what = redact_url(&chain(&e));
                Err(Outcome::Transport(match super::tls::explain(&e) {
                    Some(tls) => format!("{tls}; {what}"),
                    None => what,
                }))
            }
        }
    }
}

/// Reads the first line (≤ [`MAX_ERROR_BODY`] bytes) of an answer body.
async fn first_line(resp: &mut reqwest::Response) -> String {
    let mut line = ErrorLine::default();
    while let Ok(Some(c)) = resp.chunk().await {
        if !line.push(&c) {
            break;
        }
    }
    line.finish()
}

/// The first line of an error answer, gathered chunk by chunk: only the
/// first [`MAX_ERROR_BODY`] bytes of it are ever kept, however large the
/// body or its chunks.
#[derive(Debug, Default)]
pub struct ErrorLine {
    buf: Vec<u8>,
    /// The line's newline arrived.
    ended: bool,
}

impl ErrorLine {
    /// Takes the next chunk of the body. Returns false once no further
    /// chunk can change the line (its newline arrived or the limit is
    /// reached).
    pub fn push(&mut self, chunk: &[u8]) -> bool {
        if self.is_complete() {
            return false;
        }
        let (part, ended) = match memchr::memchr(b'\n', chunk) {
            Some(i) => (&chunk[..i], true),
            None => (chunk, false),
        };
        let room = MAX_ERROR_BODY - self.buf.len();
        self.buf.extend_from_slice(&part[..part.len().min(room)]);
        self.ended = ended;
        !self.is_complete()
    }

    fn is_complete(&self) -> bool {
        self.ended || self.buf.len() >= MAX_ERROR_BODY
    }

    /// The line as text: invalid UTF-8 replaced, trailing white space
    /// (`\r` included) trimmed. A character cut in two by the limit is
    /// dropped rather than shown as U+FFFD.
    pub fn finish(self) -> String {
        let mut buf = self.buf;
        if buf.len() >= MAX_ERROR_BODY {
            if let Err(e) = std::str::from_utf8(&buf) {
                if e.error_len().is_none() {
                    buf.truncate(e.valid_up_to());
                }
            }
        }
        String::from_utf8_lossy(&buf).trim_end().to_string()
    }
}

/// An error and its causes, `a: b: c`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

fn default_headers(cfg: &ClientConfig) -> Result<HeaderMap, String> {
    let mut h = HeaderMap::new();
    for (k, v) in cfg.headers.expose() {
        if k.eq_ignore_ascii_case(TENANT_HEADER) {
            tracing::warn!(
                url = %cfg.url,
                "headers: {TENANT_HEADER} cannot be set here (use tenant_id); ignored"
            );
            continue;
        }
        let name =
            HeaderName::from_bytes(k.as_bytes()).map_err(|e| format!("headers {k:?}: {e}"))?;
        let value = HeaderValue::from_str(v).map_err(|e| format!("headers {k:?}: {e}"))?;
        h.insert(name, value);
    }
    Ok(h)
}

fn auth(cfg: &ClientConfig) -> Result<Auth, String> {
    let bearer = match (&cfg.bearer_token, &cfg.bearer_token_file) {
        (Some(_), Some(_)) => {
            return Err("bearer_token and bearer_token_file are mutually exclusive".into())
        }
        (Some(t), None) => Some(Credential::Inline(t.clone())),
        (None, Some(f)) => Some(Credential::file(f, "bearer_token_file")?),
        (None, None) => None,
    };
    match (&cfg.basic_auth, bearer) {
        (Some(_), Some(_)) => {
            Err("basic_auth and bearer_token(_file) are mutually exclusive".into())
        }
        (Some(ba), None) => {
            let password = match (&ba.password, &ba.password_file) {
                (Some(_), Some(_)) => {
                    return Err(
                        "basic_auth: password and password_file are mutually exclusive".into(),
                    )
                }
                (Some(p), None) => Credential::Inline(p.clone()),
                (None, Some(f)) => Credential::file(f, "basic_auth.password_file")?,
                (None, None) => Credential::Inline(Secret::default()),
            };
            Ok(Auth::Basic {
                user: ba.username.clone(),
                password,
            })
        }
        (None, Some(b)) => Ok(Auth::Bearer(b)),
        (None, None) => Ok(Auth::None),
    }
}

/// Resolves `name` (the TLS server name) to the URL's real host.
struct Redirect {
    name: String,
    target: String,
}

impl reqwest::dns::Resolve for Redirect {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = if name.as_str().eq_ignore_ascii_case(&self.name) {
            self.target.clone()
        } else {
            name.as_str().to_string()
        };
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let it: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(it)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BasicAuth;

    #[test]
    fn host_label_is_go_url_host() {
        let u = parse_url("http://loki:3100/loki/api/v1/push").unwrap();
        assert_eq!(host_label(&u), "loki:3100");
        let u = parse_url("https://loki.example/loki/api/v1/push").unwrap();
        assert_eq!(host_label(&u), "loki.example");
        let u = parse_url("http://[::1]:80/x").unwrap();
        assert_eq!(host_label(&u), "[::1]");
        assert!(parse_url("ftp://x/").is_err());
        assert!(parse_url("not a url").is_err());
    }

    /// Only a client with TLS in sight loads the system's CA certificates
    /// when built (the others, when a redirect leads to `https`).
    #[test]
    fn only_a_client_with_tls_in_sight_loads_the_system_roots() {
        let with = |url: &str, proxy: Option<&str>| {
            let c = ClientConfig {
                url: url.into(),
                proxy_url: proxy.map(Into::into),
                ..Default::default()
            };
            Pusher::new(&c).unwrap().lacks_system_roots()
        };
        assert!(with("http://loki:3100/loki/api/v1/push", None));
        assert!(with(
            "HTTP://loki/loki/api/v1/push",
            Some("http://proxy:3128")
        ));
        assert!(with("http://loki/loki/api/v1/push", Some("")));
        assert!(!with("https://loki/loki/api/v1/push", None));
        assert!(!with(
            "http://loki/loki/api/v1/push",
            Some("https://proxy:3128")
        ));
        assert!(!with(
            "http://loki/loki/api/v1/push",
            Some("socks5://proxy:1080")
        ));
    }

    #[test]
    fn config_errors_name_the_key() {
        let base = ClientConfig {
            url: "http://127.0.0.1:1/loki/api/v1/push".into(),
            ..Default::default()
        };
        let mut c = base.clone();
        c.tls_config.ca_file = Some("/nonexistent/ca.pem".into());
        assert!(Pusher::new(&c)
            .err()
            .unwrap()
            .contains("tls_config.ca_file"));
        let mut c = base.clone();
        c.tls_config.cert_file = Some("/nonexistent/c.pem".into());
        assert!(Pusher::new(&c).err().unwrap().contains("key_file"));
        let mut c = base.clone();
        c.bearer_token_file = Some("/nonexistent/token".into());
        assert!(Pusher::new(&c).err().unwrap().contains("bearer_token_file"));
        let mut c = base.clone();
        c.basic_auth = Some(BasicAuth {
            username: "u".into(),
            password: None,
            password_file: Some("/nonexistent/pw".into()),
            ..Default::default()
        });
        assert!(Pusher::new(&c)
            .err()
            .unwrap()
            .contains("basic_auth.password_file"));
        let mut c = base.clone();
        c.proxy_url = Some("::bad".into());
        assert!(Pusher::new(&c).err().unwrap().contains("proxy_url"));
        let mut c = base.clone();
        c.headers.insert("bad header", "v");
        assert!(Pusher::new(&c).err().unwrap().contains("headers"));
        let mut c = base.clone();
        c.url = "".into();
        assert!(Pusher::new(&c).err().unwrap().contains("url"));
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not a certificate").unwrap();
        let mut c = base.clone();
        c.tls_config.ca_file = Some(ca);
        assert!(Pusher::new(&c)
            .err()
            .unwrap()
            .contains("tls_config.ca_file"));
        assert!(Pusher::new(&base).is_ok());
    }

    fn error_line(chunks: &[&[u8]]) -> String {
        let mut l = ErrorLine::default();
        for c in chunks {
            if !l.push(c) {
                break;
            }
        }
        l.finish()
    }

    #[test]
    fn error_line_is_the_first_line_of_the_body() {
        assert_eq!(
            error_line(&[b"entry too far behind\r\nmore"]),
            "entry too far behind"
        );
        assert_eq!(error_line(&[b"in ", b"pieces", b"\nrest"]), "in pieces");
        assert_eq!(error_line(&[]), "");
        assert_eq!(error_line(&[b"bad \xff byte"]), "bad \u{fffd} byte");
        let long = vec![b'x'; 5000];
        assert_eq!(error_line(&[&long]).len(), MAX_ERROR_BODY);
    }

    /// Found by fuzzing: a line cut at the limit in the middle of a
    /// character ended in U+FFFD, whatever the chunking.
    #[test]
    fn error_line_cut_at_the_limit_keeps_whole_characters() {
        let mut body = "a".repeat(MAX_ERROR_BODY - 1).into_bytes();
        body.extend_from_slice("é\r\n".as_bytes());
        for size in [1, 7, MAX_ERROR_BODY, body.len()] {
            let chunks: Vec<&[u8]> = body.chunks(size).collect();
            assert_eq!(
                error_line(&chunks),
                "a".repeat(MAX_ERROR_BODY - 1),
                "{size}"
            );
        }
    }

    #[test]
    fn secret_files_are_reread_and_last_good_value_kept() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        std::fs::write(&p, "one\n").unwrap();
        let mut s = Credential::file(&p, "k").unwrap();
        assert_eq!(s.get(), "one");
        std::fs::write(&p, "two").unwrap();
        assert_eq!(s.get(), "two");
        std::fs::remove_file(&p).unwrap();
        assert_eq!(s.get(), "two");
    }
}
