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

#[test]
fn unhonoured_promtail_keys_are_listed_in_one_warning() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("p.yaml");
    std::fs::write(
        &cfg,
        format!(
            "server: {{http_listen_port: 0}}\npositions: {{filename: {}/pos.yaml}}\nclients:\n  - url: http://127.0.0.1:9/loki/api/v1/push\nscrape_configs:\n  - job_name: k\n    kubernetes_sd_configs: [{{role: pod}}]\n    relabel_configs: []\n    pipeline_stages: [{{cri: {{}}}}, {{json: {{expressions: {{a: b}}}}}}]\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let child = bin()
        .arg(format!("-config.file={}", cfg.display()))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let warn: Vec<&str> = err.lines().filter(|l| l.contains("NOT honoured")).collect();
    assert_eq!(warn.len(), 1, "{err}");
    for key in ["kubernetes_sd_configs", "relabel_configs", "json"] {
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
