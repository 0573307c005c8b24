//! Secrets never leave the agent except to the server they are for: the
//! real binary, with a distinct recognisable secret in every secret-bearing
//! setting, run at every log level, with and without `-print-config-stderr`
//! and `-print-config-stdout`, while Loki accepts, refuses (401, 500), and
//! while two clients cannot connect at all (refused, unresolvable host) and
//! one Kubernetes API is down. Everything it writes to stdout and stderr,
//! its positions file and its `/metrics` are scanned for every secret (and
//! for the base64 `user:password` a basic-auth header would carry); any hit
//! fails. The receivers check that every credential arrived intact, so the
//! masking did not break authentication.
//!
//! Secret-bearing settings covered: a client `url`'s password, `proxy_url`'s
//! password, `basic_auth.password`, `basic_auth.password_file` contents,
//! `bearer_token`, `bearer_token_file` contents, `headers` Authorization,
//! X-Api-Key and Cookie, `oauth2.client_secret` (accepted, not honoured),
//! `kubernetes_sd_configs` `bearer_token`, `kubernetes_pods`
//! `basic_auth.password`.
//!
//! Each run takes a few seconds; waits have generous give-up bounds only.

#[path = "support/agent.rs"]
mod agent;
#[path = "support/kube_api.rs"]
mod kube_api;
#[path = "support/receiver.rs"]
mod receiver;

use agent::{cri_line, http_get, now_ns, refused_port, wait, RefusedPort};
use kube_api::KubeApi;
use receiver::{Mode, Receiver};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const GIVE_UP: Duration = Duration::from_secs(30);
const NODE: &str = "node-s";

/// (setting, secret). Distinct, and none a substring of another.
const SECRETS: &[(&str, &str)] = &[
    ("url password", "Sx-UrlPw-7f3a91"),
    ("basic_auth.password", "Sx-BasicPw-91c2d4"),
    ("basic_auth.password_file", "Sx-PwFile-44d1e8"),
    ("bearer_token", "Sx-Bearer-0b7e55"),
    ("bearer_token_file", "Sx-BearerFile-c3a9f0"),
    ("headers.Authorization", "Sx-AuthHdr-5e21b7"),
    ("headers.X-Api-Key", "Sx-ApiKey-8d4f06"),
    ("headers.Cookie", "Sx-Cookie-2a6b3c"),
    ("proxy_url password", "Sx-ProxyPw-6c1d82"),
    ("oauth2.client_secret", "Sx-OAuth-9e3c17"),
    ("refused client url password", "Sx-DeadPw-3d9fa2"),
    ("unresolvable client url password", "Sx-NxPw-5a7c64"),
    ("kubernetes_sd bearer_token", "Sx-KubeBearer-1f8a3e"),
    ("kubernetes_pods basic_auth.password", "Sx-KubeBasic-7b2e90"),
    ("down kubernetes_sd bearer_token", "Sx-KubeDown-4c6d1b"),
];

fn secret(name: &str) -> &'static str {
    SECRETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| *s)
        .unwrap_or_else(|| panic!("no secret {name}"))
}

/// Standard base64, as in a basic-auth header.
fn base64(input: &str) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64(&format!("{user}:{password}")))
}

/// Every string whose appearance in the agent's output is a leak.
fn needles() -> Vec<(String, String)> {
    let mut n: Vec<(String, String)> = SECRETS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (user, name) in [
        ("urluser", "url password"),
        ("bauser", "basic_auth.password"),
        ("fileuser", "basic_auth.password_file"),
        ("proxyuser", "proxy_url password"),
        ("deaduser", "refused client url password"),
        ("nxuser", "unresolvable client url password"),
        ("kubeuser", "kubernetes_pods basic_auth.password"),
    ] {
        let b64 = base64(&format!("{user}:{}", secret(name)));
        n.push((format!("{name} (base64 user:password)"), b64));
    }
    n
}

/// One agent run's setup: the servers it talks to and its directory.
struct World {
    rx: Receiver,
    api: KubeApi,
    /// The refused client's (and the unreachable API server's) port.
    dead: RefusedPort,
    dir: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        World {
            rx: Receiver::start(),
            api: KubeApi::start(),
            dead: refused_port(),
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// Writes the config (and secret files, the log file) for run `n`; the
    /// agent's HTTP port is 0 (it binds a free one).
    fn config(&self, run: &str) -> PathBuf {
        let d = self.dir.path().join(run);
        let logs = d.join("pods/ns_web_uid/main");
        fs::create_dir_all(&logs).expect("dirs");
        let pw = d.join("password");
        fs::write(&pw, format!("{}\n", secret("basic_auth.password_file"))).expect("pw");
        let tok = d.join("token");
        fs::write(&tok, secret("bearer_token_file")).expect("token");
        let rx = self.rx.addr();
        let dead = self.dead.port;
        let api = self.api.url();
        let client = |tenant: &str, url: &str, extra: &str| {
            format!(
                "  - url: {url}\n    tenant_id: {tenant}\n    batchwait: 100ms\n    timeout: 2s\n    backoff_config: {{min_period: 50ms, max_period: 200ms, max_retries: 1000}}\n{extra}"
            )
        };
        let push = format!("http://{rx}/loki/api/v1/push");
        let clients = [
            client(
                "t-url",
                &format!("http://urluser:{}@{rx}/loki/api/v1/push", secret("url password")),
                "    headers: {X-Team: blue}\n",
            ),
            client(
                "t-basic",
                &push,
                &format!(
                    "    basic_auth: {{username: bauser, password: {}}}\n    headers:\n      X-Api-Key: {}\n      Cookie: session={}\n",
                    secret("basic_auth.password"),
                    secret("headers.X-Api-Key"),
                    secret("headers.Cookie")
                ),
            ),
            client(
                "t-pwfile",
                &push,
                &format!(
                    "    basic_auth: {{username: fileuser, password_file: {}}}\n",
                    pw.display()
                ),
            ),
            client(
                "t-bearer",
                &push,
                &format!("    bearer_token: {}\n", secret("bearer_token")),
            ),
            client(
                "t-bearerfile",
                &push,
                &format!("    bearer_token_file: {}\n", tok.display()),
            ),
            client(
                "t-header",
                &push,
                &format!(
                    "    headers: {{Authorization: Bearer {}}}\n",
                    secret("headers.Authorization")
                ),
            ),
            client(
                "t-proxy",
                "http://loki.invalid/loki/api/v1/push",
                &format!(
                    "    proxy_url: http://proxyuser:{}@{rx}\n",
                    secret("proxy_url password")
                ),
            ),
            client(
                "t-oauth",
                &push,
                &format!(
                    "    oauth2: {{client_id: agent, client_secret: {}, token_url: http://{rx}/token}}\n",
                    secret("oauth2.client_secret")
                ),
            ),
            client(
                "t-dead",
                &format!(
                    "http://deaduser:{}@127.0.0.1:{dead}/loki/api/v1/push",
                    secret("refused client url password")
                ),
                "",
            ),
            client(
                "t-nx",
                &format!(
                    "http://nxuser:{}@loki.nonexistent.invalid/loki/api/v1/push",
                    secret("unresolvable client url password")
                ),
                "",
            ),
        ]
        .concat();
        let text = format!(
            r#"server:
  http_listen_address: 127.0.0.1
  http_listen_port: 0
positions:
  filename: {pos}
  sync_period: 200ms
clients:
{clients}
target_config:
  sync_period: 500ms
kubernetes:
  pod_logs_path: {pods}
  metadata_wait: 1s
scrape_configs:
  - job_name: files
    static_configs:
      - targets: [localhost]
        labels:
          job: files
          __path__: {logs}/*.log
    pipeline_stages: [cri: {{}}]
  - job_name: sd
    kubernetes_sd_configs:
      - role: pod
        api_server: {api}
        bearer_token: {kube_bearer}
  - job_name: native
    kubernetes_pods:
      api_server: {api}
      basic_auth: {{username: kubeuser, password: {kube_basic}}}
  - job_name: down
    kubernetes_sd_configs:
      - role: pod
        api_server: http://127.0.0.1:{dead}
        bearer_token: {kube_down}
"#,
            pos = d.join("positions.yaml").display(),
            pods = d.join("pods").display(),
            logs = logs.display(),
            kube_bearer = secret("kubernetes_sd bearer_token"),
            kube_basic = secret("kubernetes_pods basic_auth.password"),
            kube_down = secret("down kubernetes_sd bearer_token"),
        );
        let cfg = d.join("promtail.yaml");
        fs::write(&cfg, text).expect("config");
        cfg
    }
}

/// Appends `n` CRI lines to the run's log file.
fn write_lines(run_dir: &Path, tag: &str, n: usize) {
    let path = run_dir.join("pods/ns_web_uid/main/0.log");
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("log file");
    for i in 0..n {
        f.write_all(cri_line(now_ns(), "stdout", false, &format!("{tag} line {i}")).as_bytes())
            .expect("write");
    }
}

/// Tenants whose pushes reach the receiver.
const REACHABLE: &[&str] = &[
    "t-url",
    "t-basic",
    "t-pwfile",
    "t-bearer",
    "t-bearerfile",
    "t-header",
    "t-proxy",
    "t-oauth",
];

/// What each tenant's requests must carry: (tenant, header, value).
fn expected_headers() -> Vec<(&'static str, &'static str, String)> {
    vec![
        (
            "t-url",
            "authorization",
            basic("urluser", secret("url password")),
        ),
        (
            "t-basic",
            "authorization",
            basic("bauser", secret("basic_auth.password")),
        ),
        (
            "t-basic",
            "x-api-key",
            secret("headers.X-Api-Key").to_string(),
        ),
        (
            "t-basic",
            "cookie",
            format!("session={}", secret("headers.Cookie")),
        ),
        (
            "t-pwfile",
            "authorization",
            basic("fileuser", secret("basic_auth.password_file")),
        ),
        (
            "t-bearer",
            "authorization",
            format!("Bearer {}", secret("bearer_token")),
        ),
        (
            "t-bearerfile",
            "authorization",
            format!("Bearer {}", secret("bearer_token_file")),
        ),
        (
            "t-header",
            "authorization",
            format!("Bearer {}", secret("headers.Authorization")),
        ),
        (
            "t-proxy",
            "proxy-authorization",
            basic("proxyuser", secret("proxy_url password")),
        ),
    ]
}

fn kill(child: &mut Child, gently: bool) {
    if gently {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        if wait(GIVE_UP, || matches!(child.try_wait(), Ok(Some(_)))) {
            return;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// One run: start the agent, let every client push (and Kubernetes be
/// asked), make Loki refuse with 401 then 500, scrape `/metrics`, stop.
/// Returns what to scan: (name, text) of stdout, stderr, `/metrics`, the
/// positions file.
fn run(
    w: &World,
    name: &str,
    level: &str,
    print: Option<&str>,
    gently: bool,
) -> Vec<(String, String)> {
    // Port 0: the agent binds a free one, read from `/proc` below (a port
    // picked here could be taken by another test before the agent binds it).
    let cfg = w.config(name);
    let d = cfg.parent().expect("run dir").to_path_buf();
    write_lines(&d, "first", 5);
    w.rx.set_mode(Mode::Normal);
    w.rx.clear();
    w.api.clear_requests();
    let out_path = d.join("stdout");
    let err_path = d.join("stderr");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tailtrace"));
    cmd.arg(format!("-config.file={}", cfg.display()))
        .arg(format!("-log.level={level}"))
        .env("HOSTNAME", NODE)
        .env_remove("TAILTRACE_LOG")
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).expect("stdout"))
        .stderr(fs::File::create(&err_path).expect("stderr"));
    if let Some(flag) = print {
        cmd.arg(flag);
    }
    let mut child = cmd.spawn().expect("spawn tailtrace");

    let reached = |rx: &Receiver| {
        let reqs = rx.requests();
        REACHABLE
            .iter()
            .all(|t| reqs.iter().any(|r| r.tenant.as_deref() == Some(t)))
    };
    let all_pushed = wait(GIVE_UP, || reached(&w.rx));
    let kube_asked = wait(GIVE_UP, || {
        let log = w.api.request_log();
        log.iter().any(|r| {
            r.authorization.as_deref()
                == Some(&format!("Bearer {}", secret("kubernetes_sd bearer_token")))
        }) && log.iter().any(|r| {
            r.authorization.as_deref()
                == Some(&basic(
                    "kubeuser",
                    secret("kubernetes_pods basic_auth.password"),
                ))
        })
    });
    let mut failures = Vec::new();
    if !all_pushed {
        let seen: Vec<_> = w.rx.requests().iter().map(|r| r.tenant.clone()).collect();
        failures.push(format!("not every client pushed; tenants seen: {seen:?}"));
    }
    if !kube_asked {
        let seen: Vec<_> = w
            .api
            .request_log()
            .iter()
            .map(|r| r.authorization.clone())
            .collect();
        failures.push(format!(
            "the Kubernetes API did not get both credentials: {seen:?}"
        ));
    }
    // The credentials arrived intact.
    for (tenant, header, want) in expected_headers() {
        let reqs = w.rx.requests();
        let ok = reqs
            .iter()
            .filter(|r| r.tenant.as_deref() == Some(tenant))
            .any(|r| r.header(header) == Some(want.as_str()));
        if !ok {
            failures.push(format!("{tenant}: no request with {header}: {want}"));
        }
    }
    // Loki refuses: 401, then 500 (retried), each answered at least once.
    for status in [401u16, 500] {
        w.rx.set_mode(Mode::Status(status));
        write_lines(&d, &format!("refused {status}"), 3);
        let answered = wait(GIVE_UP, || {
            w.rx.requests().iter().any(|r| r.status == status)
        });
        if !answered {
            failures.push(format!("no push was answered {status}"));
        }
    }
    w.rx.set_mode(Mode::Normal);
    let metrics = agent::listening_port_of(child.id())
        .and_then(|port| http_get(port, "/metrics"))
        .map(|(_, body)| body)
        .unwrap_or_default();
    if !metrics.contains("promtail_sent_entries_total") {
        failures.push("no /metrics scraped".into());
    }
    kill(&mut child, gently);
    assert!(
        failures.is_empty(),
        "{name}: {failures:#?}\nstderr:\n{}",
        read(&err_path)
    );
    vec![
        ("stdout".into(), read(&out_path)),
        ("stderr".into(), read(&err_path)),
        ("/metrics".into(), metrics),
        ("positions file".into(), read(&d.join("positions.yaml"))),
    ]
}

fn read(p: &Path) -> String {
    fs::read(p)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Fails naming every (output, setting) pair where a secret shows.
fn assert_no_secret(run: &str, outputs: &[(String, String)]) {
    let mut hits = Vec::new();
    for (what, text) in outputs {
        for (setting, needle) in needles() {
            if text.contains(&needle) {
                hits.push(format!("{what} shows the {setting}"));
            }
        }
    }
    assert!(hits.is_empty(), "{run}: {hits:#?}");
}

/// All three print modes at one level.
fn level(level: &str) {
    let w = World::new();
    for (i, print) in [
        None,
        Some("-print-config-stderr"),
        Some("-print-config-stdout"),
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("{level}-{i}");
        // One run shuts down cleanly, so the shutdown path is scanned too.
        let gently = level == "debug" && i == 0;
        let outputs = run(&w, &name, level, print, gently);
        assert_no_secret(&name, &outputs);
        if let Some(flag) = print {
            let shown = if flag.ends_with("stdout") {
                &outputs[0].1
            } else {
                &outputs[1].1
            };
            // It printed the config, masks and all.
            for want in [
                "# tailtrace: effective configuration",
                "password: <secret>",
                "bearer_token: <secret>",
                "Authorization: <secret>",
                "X-Api-Key: <secret>",
                "X-Team: blue",
                "urluser:***@",
                "proxyuser:***@",
            ] {
                assert!(shown.contains(want), "{name}: no {want:?} in:\n{shown}");
            }
        }
        if level == "debug" {
            let stderr = &outputs[1].1;
            assert!(
                stderr.contains("push failed") || stderr.contains("push rejected"),
                "{name}: the failures were not logged:\n{stderr}"
            );
        }
    }
}

#[test]
fn no_secret_in_any_output_at_debug() {
    level("debug");
}

#[test]
fn no_secret_in_any_output_at_info() {
    level("info");
}

#[test]
fn no_secret_in_any_output_at_warn() {
    level("warn");
}

#[test]
fn no_secret_in_any_output_at_error() {
    level("error");
}

/// The printed config is a config: `-check-syntax` accepts it.
#[test]
fn printed_config_passes_check_syntax() {
    let w = World::new();
    let cfg = w.config("print");
    let printed = cfg.with_file_name("printed.yaml");
    // -dry-run keeps running (no line to print): read the config, then stop.
    let mut child = Command::new(env!("CARGO_BIN_EXE_tailtrace"))
        .arg(format!("-config.file={}", cfg.display()))
        .arg("-print-config-stdout")
        .arg("-dry-run")
        .arg("-log.level=error")
        .env("HOSTNAME", NODE)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&printed).expect("stdout"))
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    // `pod_uid` is the last key printed.
    let done = wait(GIVE_UP, || read(&printed).contains("pod_uid:"));
    kill(&mut child, false);
    let yaml = read(&printed);
    assert!(done, "{yaml}");
    let check = Command::new(env!("CARGO_BIN_EXE_tailtrace"))
        .arg(format!("-config.file={}", printed.display()))
        .arg("-check-syntax")
        .output()
        .expect("check-syntax");
    assert!(
        check.status.success(),
        "{}\n{yaml}",
        String::from_utf8_lossy(&check.stderr)
    );
}
