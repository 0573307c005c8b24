//! The command line as Promtail users know it: -check-syntax, config errors
//! that name the line and key, -dry-run on the bundled sample.

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tailtrace"))
}

#[test]
fn check_syntax_accepts_the_bundled_sample_config() {
    let out = bin()
        .args([
            "-config.file=examples/sample/promtail.yaml",
            "-check-syntax",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Valid config file"));
}

#[test]
fn an_unknown_key_is_an_error_naming_the_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("p.yaml");
    std::fs::write(
        &cfg,
        "clients:\n  - url: http://127.0.0.1:3100/loki/api/v1/push\n    batch_size: 10\nscrape_configs: []\n",
    )
    .unwrap();
    let out = bin()
        .arg(format!("--config.file={}", cfg.display()))
        .arg("-check-syntax")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("p.yaml:3"), "line number: {err}");
    assert!(err.contains("batch_size"), "key: {err}");
}

/// A SIGTERM that comes while the agent is still starting is a clean
/// shutdown (exit 0), not the default action's kill: sent the moment the
/// agent's first warning (printed first thing, before the positions, the
/// clients or the tailer start) is read. (It raced before: the handlers
/// were installed once everything had started, and a test that stopped
/// the agent as soon as it printed entries saw it killed, now and then,
/// under load.)
#[test]
fn a_sigterm_while_starting_is_a_clean_shutdown() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut child = start_with_unhonoured_keys(dir.path());
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    err.read_line(&mut first).unwrap();
    assert!(first.contains("NOT honoured"), "the first line: {first}");
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut err, &mut rest);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}: {first}{rest}");
    assert!(rest.contains("shutting down"), "{first}{rest}");
}

/// Starts the agent (stderr piped) on a config in `dir` with two Promtail
/// keys it accepts but does not honour: its first line is their warning.
fn start_with_unhonoured_keys(dir: &Path) -> std::process::Child {
    let cfg = dir.join("p.yaml");
    std::fs::write(
        &cfg,
        format!(
            "server: {{http_listen_port: 0}}\npositions: {{filename: {}/pos.yaml}}\nclients:\n  - url: http://127.0.0.1:9/loki/api/v1/push\nscrape_configs:\n  - job_name: k\n    kubernetes_sd_configs: [{{role: node}}]\n    relabel_configs: []\n    pipeline_stages: [{{cri: {{}}}}, {{geoip: {{db: /x.mmdb, source: ip}}}}]\n",
            dir.display()
        ),
    )
    .unwrap();
    bin()
        .arg(format!("-config.file={}", cfg.display()))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn unhonoured_promtail_keys_are_listed_in_one_warning() {
    let dir = tempfile::tempdir().unwrap();
    let child = start_with_unhonoured_keys(dir.path());
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let warn: Vec<&str> = err.lines().filter(|l| l.contains("NOT honoured")).collect();
    assert_eq!(warn.len(), 1, "{err}");
    // A role that yields no file targets, and a stage not run yet.
    for key in ["kubernetes_sd_configs[0].role", "geoip"] {
        assert!(warn[0].contains(key), "{key} missing from: {}", warn[0]);
    }
    assert!(out.status.success(), "{err}");
}

#[test]
fn dry_run_prints_the_sample_entries_and_writes_no_positions() {
    let dir = tempfile::tempdir().unwrap();
    let pos = dir.path().join("pos.yaml");
    let text = std::fs::read_to_string("examples/sample/promtail.yaml")
        .unwrap()
        .replace(
            "/tmp/tailtrace-sample-positions.yaml",
            &pos.display().to_string(),
        );
    let cfg = dir.path().join("sample.yaml");
    std::fs::write(&cfg, text).unwrap();
    let child = bin()
        .arg(format!("-config.file={}", cfg.display()))
        .arg("-dry-run")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The split P/P/F line comes out whole, with the F piece's timestamp.
    let joined = stdout
        .lines()
        .find(|l| l.contains("part-one-"))
        .unwrap_or_else(|| panic!("no joined line in:\n{stdout}"));
    assert!(
        joined.ends_with("part-two-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxend-of-long-line")
            || joined.contains("end-of-long-line"),
        "{joined}"
    );
    assert!(
        joined.starts_with("2025-11-22T08:27:00.0000003"),
        "timestamp of the F piece: {joined}"
    );
    assert!(
        joined.contains("stream=\"stdout\"")
            && joined.contains("job=\"pods\"")
            && joined.contains("cluster=\"sample\""),
        "{joined}"
    );
    assert!(stdout.contains("stream=\"stderr\""));
    assert!(
        stdout.contains("a docker line split at 16 KiB, first piece and its last piece"),
        "docker pieces joined:\n{stdout}"
    );
    // Docker's `log` keeps its trailing newline (as in Promtail), so its
    // entries print an empty line after them.
    let lines = stdout.lines().filter(|l| !l.is_empty()).count();
    assert_eq!(
        lines,
        12 + 1 + 1 + 8 + 3 + 4 + 5 + 1,
        "every sample line once:\n{stdout}"
    );
    assert!(!pos.exists(), "-dry-run must not write positions");
}

// ---- The quick start: examples/sample/generate.sh, a fresh sample for a real
// Loki (current timestamps, pod labels), and examples/loki-grafana/.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const SAMPLE: &str = "examples/sample";
/// Where examples/loki-grafana/promtail.yaml expects generate.sh's output.
const LOKI_SAMPLE_DIR: &str = "/tmp/tailtrace-sample";

/// Nanoseconds since the epoch of an RFC 3339 timestamp (`Z` or `±hh:mm`),
/// or of one in Go's `-0700` form, as `-dry-run` prints them (`±hhmm`).
fn rfc3339_nanos(s: &str) -> Option<i128> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |a: usize, z: usize| s.get(a..z)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, se) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    let mut rest = &s[19..];
    let mut frac = 0i128;
    if let Some(r) = rest.strip_prefix('.') {
        let n = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
        if n == 0 || n > 9 {
            return None;
        }
        frac = r[..n].parse::<i128>().ok()? * 10i128.pow(9 - n as u32);
        rest = &r[n..];
    }
    let offset = match rest {
        "Z" => 0,
        _ if (rest.len() == 6 && rest.as_bytes()[3] == b':') || rest.len() == 5 => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let m = rest.len() - 2;
            sign * (rest.get(1..3)?.parse::<i64>().ok()? * 3600
                + rest.get(m..)?.parse::<i64>().ok()? * 60)
        }
        _ => return None,
    };
    // Days from the civil date (H. Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (mo + if mo > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let secs = days * 86400 + h * 3600 + mi * 60 + se - offset;
    Some(secs as i128 * 1_000_000_000 + frac)
}

#[test]
fn rfc3339_nanos_parses_what_the_sample_and_dry_run_use() {
    assert_eq!(rfc3339_nanos("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(
        rfc3339_nanos("2019-10-11T18:23:58Z"),
        Some(1_570_818_238_000_000_000)
    );
    assert_eq!(
        rfc3339_nanos("2019-10-11T20:23:58.5+02:00"),
        Some(1_570_818_238_500_000_000)
    );
    assert_eq!(
        rfc3339_nanos("2019-10-11T18:23:58.5+0000"),
        Some(1_570_818_238_500_000_000)
    );
    assert_eq!(
        rfc3339_nanos("2019-10-11T16:53:58.5-0130"),
        Some(1_570_818_238_500_000_000)
    );
    assert_eq!(
        rfc3339_nanos("2000-03-01T00:00:00.0000003Z"),
        Some(951_868_800_000_000_300)
    );
    assert_eq!(rfc3339_nanos("2000-03-01 00:00:00Z"), None);
}

fn now_nanos() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i128
}

/// Every file under `root/pods` and `root/docker`, relative to `root`, sorted.
fn sample_files(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, root, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    let mut out = Vec::new();
    for sub in ["pods", "docker"] {
        walk(&root.join(sub), root, &mut out);
    }
    out.sort();
    out
}

/// A log line's timestamp and the line with the timestamp taken out: a CRI
/// line's first field, or a docker json-file line's `time`.
fn split_timestamp(line: &str) -> (String, String) {
    if line.starts_with('{') {
        let mut v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        let ts = v["time"]
            .as_str()
            .unwrap_or_else(|| panic!("no time: {line}"))
            .to_string();
        v["time"] = serde_json::Value::Null;
        (ts, v.to_string())
    } else {
        let (ts, rest) = line
            .split_once(' ')
            .unwrap_or_else(|| panic!("not CRI: {line}"));
        (ts.to_string(), rest.to_string())
    }
}

fn generate_sample(out: &Path) {
    let run = Command::new("bash")
        .arg(format!("{SAMPLE}/generate.sh"))
        .arg(out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "generate.sh failed:\n{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
}

#[test]
fn generate_sh_writes_the_sample_line_for_line_with_current_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sample");
    let before = now_nanos();
    generate_sample(&out);
    let after = now_nanos();

    let files = sample_files(Path::new(SAMPLE));
    assert_eq!(files, sample_files(&out), "the same files as {SAMPLE}");
    assert!(files.len() >= 5, "{files:?}");
    let mut shift: Option<i128> = None;
    let mut stamps = 0;
    for rel in &files {
        let old = std::fs::read_to_string(Path::new(SAMPLE).join(rel)).unwrap();
        let new = std::fs::read_to_string(out.join(rel)).unwrap();
        assert_eq!(
            old.ends_with('\n'),
            new.ends_with('\n'),
            "{}",
            rel.display()
        );
        let (old, new): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
        assert_eq!(old.len(), new.len(), "{}: line count", rel.display());
        for (o, n) in old.iter().zip(&new) {
            let ((ots, orest), (nts, nrest)) = (split_timestamp(o), split_timestamp(n));
            assert_eq!(
                orest,
                nrest,
                "{}: only the timestamp may change",
                rel.display()
            );
            // Same precision and zone suffix (containerd's Z, CRI-O's +00:00).
            assert_eq!(ots[19..], nts[19..], "{}: {o} / {n}", rel.display());
            let (ot, nt) = (rfc3339_nanos(&ots).unwrap(), rfc3339_nanos(&nts).unwrap());
            assert!(
                nt > before - 3_600_000_000_000 && nt <= after,
                "{}: {nts} is not within the last hour",
                rel.display()
            );
            // One shift for the whole sample: its spacing and order are kept.
            let s = *shift.get_or_insert(nt - ot);
            assert_eq!(nt - ot, s, "{}: {o} / {n}", rel.display());
            assert_eq!(s % 1_000_000_000, 0, "a whole number of seconds");
            stamps += 1;
        }
    }
    assert!(stamps >= 35, "{stamps} timestamped lines");
    assert!(out.join("promtail.yaml").is_file());
    // Running it again replaces the tree (no error, still one copy).
    generate_sample(&out);
    assert_eq!(files, sample_files(&out));
}

#[test]
fn generate_sh_refuses_a_directory_it_did_not_write() {
    let dir = tempfile::tempdir().unwrap();
    let keep = dir.path().join("pods/keep.log");
    std::fs::create_dir_all(keep.parent().unwrap()).unwrap();
    std::fs::write(&keep, "mine\n").unwrap();
    let run = Command::new("bash")
        .arg(format!("{SAMPLE}/generate.sh"))
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!run.status.success());
    assert_eq!(std::fs::read_to_string(&keep).unwrap(), "mine\n");
}

/// One entry the sample should produce: its labels, the timestamps it may
/// carry (those of its pieces), and its line.
#[derive(Debug)]
struct Expected {
    labels: BTreeMap<String, String>,
    stamps: Vec<i128>,
    line: String,
}

/// The entries the generated tree under `root` should produce with the
/// generated config: CRI P pieces joined up to their F, docker pieces up to
/// the one ending in a newline (printed without it); pod files labelled from
/// their directory `<namespace>_<pod>_<uid>/<container>/`.
fn expected_entries(root: &Path) -> Vec<Expected> {
    let mut out = Vec::new();
    for rel in sample_files(root) {
        let path = root.join(&rel);
        let mut base = BTreeMap::from([
            ("cluster".to_string(), "sample".to_string()),
            ("filename".to_string(), path.display().to_string()),
        ]);
        let parts: Vec<String> = rel
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect();
        let docker = parts[0] == "docker";
        if docker {
            base.insert("job".into(), "docker".into());
        } else {
            let (ns, rest) = parts[1].split_once('_').unwrap();
            let (pod, _uid) = rest.rsplit_once('_').unwrap();
            base.insert("job".into(), "pods".into());
            base.insert("namespace".into(), ns.into());
            base.insert("pod".into(), pod.into());
            base.insert("container".into(), parts[2].clone());
        }
        let (mut line, mut stamps) = (String::new(), Vec::new());
        for raw in std::fs::read_to_string(&path).unwrap().lines() {
            let (ts, stream, piece, last) = if docker {
                let v: serde_json::Value = serde_json::from_str(raw).unwrap();
                let log = v["log"].as_str().unwrap().to_string();
                let last = log.ends_with('\n');
                let piece = log.strip_suffix('\n').unwrap_or(&log).to_string();
                let ts = v["time"].as_str().unwrap().to_string();
                (ts, v["stream"].as_str().unwrap().to_string(), piece, last)
            } else {
                let f: Vec<&str> = raw.splitn(4, ' ').collect();
                (
                    f[0].to_string(),
                    f[1].to_string(),
                    f[3].to_string(),
                    f[2] == "F",
                )
            };
            line.push_str(&piece);
            stamps.push(rfc3339_nanos(&ts).unwrap());
            if last {
                let mut labels = base.clone();
                labels.insert("stream".into(), stream);
                out.push(Expected {
                    labels,
                    stamps: std::mem::take(&mut stamps),
                    line: std::mem::take(&mut line),
                });
            }
        }
    }
    out
}

/// `{a="b", c="d"}` as -dry-run prints it.
fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let inner = s
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .unwrap_or_else(|| panic!("labels: {s}"));
    inner
        .split(", ")
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or_else(|| panic!("label: {kv}"));
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap();
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// Runs the agent with `-dry-run` on `cfg` until it printed `want` entries
/// (or 30 s went by), stops it with SIGINT and returns every entry it printed,
/// as (timestamp, labels, line).
fn dry_run(cfg: &Path, want: usize) -> Vec<(i128, BTreeMap<String, String>, String)> {
    use std::io::BufRead;
    let mut child = bin()
        .arg(format!("-config.file={}", cfg.display()))
        .arg("-dry-run")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if !line.is_empty() && tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while lines.len() < want {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => lines.push(l),
            Err(_) => break,
        }
    }
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    // Whatever else it prints before it exits counts too.
    lines.extend(rx.iter());
    reader.join().unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    lines
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.splitn(3, '\t').collect();
            assert_eq!(f.len(), 3, "not an entry: {l}\n{stderr}");
            let ts = rfc3339_nanos(f[0]).unwrap_or_else(|| panic!("timestamp: {l}"));
            (ts, parse_labels(f[1]), f[2].to_string())
        })
        .collect()
}

/// Every expected entry printed exactly once, with one of its pieces'
/// timestamps (all within the last hour) and its labels.
fn assert_fresh_sample_entries(cfg: &Path, root: &Path) {
    let expected = expected_entries(root);
    assert_eq!(expected.len(), 35, "the sample holds 35 entries");
    let pos_before: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let got = dry_run(cfg, expected.len());
    let now = now_nanos();
    for (ts, labels, line) in &got {
        assert!(
            *ts > now - 3_600_000_000_000 && *ts <= now,
            "timestamp not within the last hour: {ts} {labels:?} {line}"
        );
    }
    // Both sides sorted by (labels, line, timestamp): repeated lines of one
    // file are single pieces, so they pair up by their timestamps.
    let mut want: Vec<&Expected> = expected.iter().collect();
    want.sort_by(|a, b| {
        (&a.labels, &a.line, a.stamps.iter().max()).cmp(&(
            &b.labels,
            &b.line,
            b.stamps.iter().max(),
        ))
    });
    let mut have: Vec<(&BTreeMap<String, String>, &String, i128)> =
        got.iter().map(|(t, l, s)| (l, s, *t)).collect();
    have.sort();
    assert_eq!(
        have.len(),
        want.len(),
        "every sample line once; printed:\n{have:#?}"
    );
    for ((labels, line, ts), e) in have.iter().zip(want) {
        assert_eq!(
            (*labels, *line),
            (&e.labels, &e.line),
            "printed vs expected"
        );
        assert!(
            e.stamps.contains(ts),
            "{line}: timestamp {ts} is none of {:?}",
            e.stamps
        );
    }
    // The pod labels are there: 3 pods, 2 namespaces.
    for (ns, n) in [("shop", 14 + 8), ("kube-system", 7)] {
        let c = got
            .iter()
            .filter(|(_, l, _)| l.get("namespace").map(String::as_str) == Some(ns))
            .count();
        assert_eq!(c, n, "entries with namespace={ns}");
    }
    // -dry-run writes no positions file.
    let pos_after: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(pos_before, pos_after, "-dry-run must not write positions");
}

#[test]
fn dry_run_on_a_generated_sample_prints_every_line_once_fresh_with_pod_labels() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sample");
    generate_sample(&out);
    assert_fresh_sample_entries(&out.join("promtail.yaml"), &out);
}

#[test]
fn the_loki_grafana_config_ships_the_generated_sample_with_pod_labels() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sample");
    generate_sample(&out);
    let text = std::fs::read_to_string("examples/loki-grafana/promtail.yaml").unwrap();
    assert!(text.contains(LOKI_SAMPLE_DIR), "{text}");
    assert!(
        text.contains("http://127.0.0.1:3100/loki/api/v1/push")
            || text.contains("http://localhost:3100/loki/api/v1/push"),
        "pushes to the Loki of compose.yaml"
    );
    let cfg = dir.path().join("loki.yaml");
    std::fs::write(
        &cfg,
        text.replace(LOKI_SAMPLE_DIR, &out.display().to_string()),
    )
    .unwrap();
    assert_fresh_sample_entries(&cfg, &out);
}

#[test]
fn inspect_prints_what_each_stage_changed() {
    let dir = tempfile::tempdir().unwrap();
    let pos = dir.path().join("pos.yaml");
    let text = std::fs::read_to_string("examples/sample/promtail.yaml")
        .unwrap()
        .replace(
            "/tmp/tailtrace-sample-positions.yaml",
            &pos.display().to_string(),
        );
    let cfg = dir.path().join("sample.yaml");
    std::fs::write(&cfg, text).unwrap();
    let child = bin()
        .arg(format!("-config.file={}", cfg.display()))
        .arg("-dry-run")
        .arg("-inspect")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    // The cri stage adds the `stream` label and rewrites the line (the CRI
    // prefix goes) and the timestamp (the runtime's); a P piece is held.
    assert!(err.contains("[inspect: cri stage]:"), "{err}");
    assert!(err.contains("+stream=\"stdout\""), "{err}");
    assert!(err.contains("  timestamp: "), "{err}");
    assert!(err.contains("  line: -\""), "{err}");
    assert!(err.contains("held or dropped the entry"), "{err}");
    assert!(
        !err.contains("not honoured yet: no per-stage diff"),
        "{err}"
    );
}
