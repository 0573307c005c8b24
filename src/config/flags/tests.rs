//! Go-`flag`-style parsing and Promtail's flag-over-file precedence.

use super::*;
use crate::config::load_str;

fn parse(args: &[&str]) -> Result<Flags, String> {
    Flags::parse_from(args.iter().map(|s| s.to_string()))
}

fn cfg(text: &str) -> Config {
    load_str(text, "p.yaml", false).unwrap()
}

#[test]
fn go_flag_syntax() {
    let f = parse(&[
        "-config.file=/etc/p.yaml",
        "--config.expand-env",
        "-dry-run=true",
        "-check-syntax=false",
        "-log.level",
        "debug",
        "--log.format=json",
        "-client.url",
        "http://loki:3100/loki/api/v1/push",
        "-client.tenant-id=t1",
        "-client.batch-wait=2s",
        "-client.batch-size-bytes=512KiB",
        "-client.external-labels=cluster=prod,region=eu",
        "-server.http-listen-port=9999",
        "-positions.file",
        "/tmp/pos.yaml",
        "-inspect",
        "-print-config-stderr=1",
        "-print-config-stdout",
    ])
    .unwrap();
    assert_eq!(
        f.config_file.as_deref(),
        Some(std::path::Path::new("/etc/p.yaml"))
    );
    assert!(f.config_expand_env && f.dry_run && !f.check_syntax && f.inspect);
    assert!(f.print_config_stderr && f.print_config_stdout);
    assert_eq!(f.log_level, Some(LogLevel::Debug));
    assert_eq!(f.log_format, Some(LogFormat::Json));
    assert_eq!(
        f.client_url.as_deref(),
        Some("http://loki:3100/loki/api/v1/push")
    );
    assert_eq!(f.client_tenant_id.as_deref(), Some("t1"));
    assert_eq!(f.client_batch_wait, Some(Duration::from_secs(2)));
    assert_eq!(f.client_batch_size_bytes, Some(512 * 1024));
    assert_eq!(f.client_external_labels["cluster"], "prod");
    assert_eq!(f.client_external_labels["region"], "eu");
    assert_eq!(f.server_http_listen_port, Some(9999));
    assert_eq!(
        f.positions_file.as_deref(),
        Some(std::path::Path::new("/tmp/pos.yaml"))
    );
    assert!(!f.version && !f.help);
}

#[test]
fn bool_flags_do_not_take_the_next_argument() {
    // `-dry-run false`: `false` is a stray argument, as in Go.
    let e = parse(&["-config.file=p", "-dry-run", "false"]).unwrap_err();
    assert!(e.contains("unexpected argument \"false\""), "{e}");
    let e = parse(&["-config.file=p", "-dry-run=maybe"]).unwrap_err();
    assert!(
        e.contains("invalid boolean value \"maybe\" for -dry-run"),
        "{e}"
    );
}

#[test]
fn last_flag_wins_and_labels_merge() {
    let f = parse(&[
        "-config.file=a",
        "-config.file=b",
        "-log.level=warn",
        "-log.level=error",
        "-client.external-labels=a=1",
        "-client.external-labels=b=2,a=3",
    ])
    .unwrap();
    assert_eq!(f.config_file.as_deref(), Some(std::path::Path::new("b")));
    assert_eq!(f.log_level, Some(LogLevel::Error));
    assert_eq!(f.client_external_labels.len(), 2);
    assert_eq!(f.client_external_labels["a"], "3");
}

#[test]
fn errors_name_the_flag() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["-config.file=p", "-nope"],
            "flag provided but not defined: -nope",
        ),
        (
            &["-config.file=p", "--client.batchwait=1s"],
            "-client.batchwait",
        ),
        (&["-config.file"], "flag needs an argument: -config.file"),
        (&["-config.file=p", "-log.level=verbose"], "-log.level"),
        (&["-config.file=p", "-log.format=text"], "-log.format"),
        (&["-config.file=p", "-client.url=loki:3100"], "-client.url"),
        (&["-config.file=p", "-client.url=not a url"], "-client.url"),
        (
            &["-config.file=p", "-client.batch-wait=10"],
            "-client.batch-wait",
        ),
        (
            &["-config.file=p", "-client.batch-size-bytes=big"],
            "-client.batch-size-bytes",
        ),
        (
            &["-config.file=p", "-client.external-labels=novalue"],
            "-client.external-labels",
        ),
        (
            &["-config.file=p", "-client.external-labels=bad-name=x"],
            "-client.external-labels",
        ),
        (
            &["-config.file=p", "-server.http-listen-port=70000"],
            "-server.http-listen-port",
        ),
        (
            &["-config.file=p", "stray"],
            "unexpected argument \"stray\"",
        ),
        (&["-config.file=p", "---x"], "bad flag syntax"),
        (&["-config.file=p", "-=x"], "bad flag syntax"),
        (&["-config.file=p", "--", "x"], "unexpected argument \"x\""),
        (&["-dry-run"], "-config.file is required"),
        (&[], "-config.file is required"),
    ];
    for (args, want) in cases {
        let e = parse(args).unwrap_err();
        assert!(e.contains(want), "{args:?}: {e}");
    }
}

#[test]
fn help_and_version_need_no_config() {
    assert!(parse(&["-h"]).unwrap().help);
    assert!(parse(&["--help"]).unwrap().help);
    assert!(parse(&["-version"]).unwrap().version);
    assert!(parse(&["-config.file=p", "--"]).is_ok());
    let u = Flags::usage();
    for name in [
        "-config.file",
        "-config.expand-env",
        "-dry-run",
        "-client.url",
        "-positions.file",
    ] {
        assert!(u.contains(name), "{name}");
    }
}

#[test]
fn client_url_adds_a_client_with_the_client_flags() {
    let f = parse(&[
        "-config.file=p",
        "-client.url=http://flag:3100/loki/api/v1/push",
        "-client.tenant-id=t",
        "-client.batch-wait=3s",
        "-client.batch-size-bytes=1000",
    ])
    .unwrap();
    let mut c = cfg("clients:\n  - url: http://file:3100/loki/api/v1/push\n");
    f.apply(&mut c).unwrap();
    assert_eq!(c.clients.len(), 2);
    assert_eq!(c.clients[0].tenant_id, None);
    let added = &c.clients[1];
    assert_eq!(added.url.expose(), "http://flag:3100/loki/api/v1/push");
    assert_eq!(added.tenant_id.as_deref(), Some("t"));
    assert_eq!(added.batchwait, Duration::from_secs(3));
    assert_eq!(added.batchsize, 1000);
    assert_eq!(c.client_key(1), "client");
    c.validate(false).unwrap();
    // With no clients in the file, the flag alone makes a valid config.
    let mut c = cfg("");
    f.apply(&mut c).unwrap();
    assert_eq!(c.clients.len(), 1);
    c.validate(false).unwrap();
}

#[test]
fn client_url_overrides_the_client_block_or_selects_a_match() {
    let f = parse(&[
        "-config.file=p",
        "-client.url=http://flag/",
        "-client.tenant-id=t",
    ])
    .unwrap();
    let mut c = cfg("client: {url: 'http://file/', batchsize: 7}\n");
    f.apply(&mut c).unwrap();
    assert_eq!(c.clients.len(), 1);
    assert_eq!(c.clients[0].url.expose(), "http://flag/");
    assert_eq!(c.clients[0].batchsize, 7);
    assert_eq!(c.clients[0].tenant_id.as_deref(), Some("t"));

    let mut c = cfg("clients: [{url: 'http://a/'}, {url: 'http://flag/'}]\n");
    f.apply(&mut c).unwrap();
    assert_eq!(c.clients.len(), 2);
    assert_eq!(c.clients[1].tenant_id.as_deref(), Some("t"));
    assert_eq!(c.clients[0].tenant_id, None);
}

#[test]
fn client_flags_without_a_target_are_errors() {
    let f = parse(&["-config.file=p", "-client.tenant-id=t"]).unwrap();
    let e = f
        .apply(&mut cfg("clients: [{url: 'http://a/'}]\n"))
        .unwrap_err();
    assert!(e.contains("-client.tenant-id"), "{e}");
    // With a `client:` block they apply to it.
    let mut c = cfg("client: {url: 'http://a/'}\n");
    f.apply(&mut c).unwrap();
    assert_eq!(c.clients[0].tenant_id.as_deref(), Some("t"));
}

#[test]
fn server_positions_log_and_label_overrides() {
    let f = parse(&[
        "-config.file=p",
        "-server.http-listen-port=1234",
        "-positions.file=/pos.yaml",
        "-log.level=warn",
        "-client.external-labels=cluster=flag,new=x",
    ])
    .unwrap();
    let mut c = cfg("server: {http_listen_port: 1, log_level: debug, log_format: json}\npositions: {filename: /file.yaml}\nclients:\n  - {url: 'http://a/', external_labels: {cluster: file, keep: y}}\n  - {url: 'http://b/'}\n");
    f.apply(&mut c).unwrap();
    assert_eq!(c.server.http_listen_port, 1234);
    assert_eq!(c.positions.filename, std::path::Path::new("/pos.yaml"));
    assert_eq!(c.log_level(), LogLevel::Warn);
    // Not given on the command line: the file's value stays.
    assert_eq!(c.log_format(), LogFormat::Json);
    let a = &c.clients[0].external_labels;
    assert_eq!(
        (a["cluster"].as_str(), a["keep"].as_str(), a["new"].as_str()),
        ("flag", "y", "x")
    );
    assert_eq!(c.clients[1].external_labels["cluster"], "flag");
}

#[test]
fn load_with_flags_is_the_whole_check() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p.yaml");
    std::fs::write(&p, "scrape_configs: []\n").unwrap();
    let path = p.display().to_string();
    let f = parse(&["-config.file", &path, "-check-syntax"]).unwrap();
    let e = crate::config::load_with_flags(&f).unwrap_err();
    assert_eq!(e.key, "clients");
    assert_eq!(e.file, path);
    let f = parse(&["-config.file", &path, "-dry-run"]).unwrap();
    crate::config::load_with_flags(&f).unwrap();
    let f = parse(&["-config.file", &path, "-client.url=http://l/"]).unwrap();
    assert_eq!(crate::config::load_with_flags(&f).unwrap().clients.len(), 1);
    let f = parse(&["-config.file", &path, "-client.batch-wait=1s", "-dry-run"]).unwrap();
    let e = crate::config::load_with_flags(&f).unwrap_err();
    assert_eq!(e.file, "command line");
}
