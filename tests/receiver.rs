//! Tests of the fake Loki receiver (tests/support/receiver.rs) itself: that it
//! decodes what Loki decodes, rejects what Loki rejects, and that its modes
//! behave, so other integration tests can trust it.
//!
//! Requests are hand-written HTTP/1.1 over `std::net::TcpStream` (plain
//! `#[test]`s, no runtime), plus one reqwest round trip for keep-alive.

#[path = "support/receiver.rs"]
mod receiver;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use receiver::proto::{self, entry, request, stream};
use receiver::{Mode, Options, Receiver};

const WAIT: Duration = Duration::from_secs(10);

/// One HTTP/1.1 request with `Connection: close`; Ok((status, body)) or Err
/// when the server closed without answering.
fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
    s.write_all(body).map_err(|e| e.to_string())?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&resp).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| format!("no HTTP response (got {} bytes)", resp.len()))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

fn push(r: &Receiver, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    send(r.addr(), "POST", "/loki/api/v1/push", headers, body).expect("receiver answered")
}

fn push_proto(r: &Receiver, req: &proto::PushRequest) -> (u16, String) {
    push(
        r,
        &[("Content-Type", "application/x-protobuf")],
        &proto::encode_snappy(req),
    )
}

fn push_json(r: &Receiver, json: &str) -> (u16, String) {
    push(r, &[("Content-Type", "application/json")], json.as_bytes())
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn raw_deflate(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn zlib(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const SIMPLE_JSON: &str = r#"{"streams":[{"stream":{"app":"x","ns":"y"},"values":[["1570818238000000000","a line"],["1570818238000000001","another",{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"}]]}]}"#;

fn assert_simple_json(r: &Receiver) {
    let e = r.entries();
    assert_eq!(e.len(), 2);
    assert_eq!(e[0].labels, labels(&[("app", "x"), ("ns", "y")]));
    assert_eq!(e[0].ts_ns, 1_570_818_238_000_000_000);
    assert_eq!(e[0].line, "a line");
    assert!(e[0].metadata.is_empty());
    assert_eq!(e[1].ts_ns, 1_570_818_238_000_000_001);
    assert_eq!(e[1].line, "another");
    assert_eq!(
        e[1].metadata,
        vec![(
            "trace_id".to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736".to_string()
        )]
    );
    assert_eq!(e[0].tenant, "fake");
}

#[test]
fn protobuf_snappy_is_decoded_exactly() {
    let r = Receiver::start();
    let req = request(vec![
        stream(
            r#"{namespace="prod", app="api\"x\\y\n", pod=`raw\n`}"#,
            vec![
                entry(1_700_000_000_123_456_789, "first line", &[]),
                entry(
                    1_700_000_000_123_456_790,
                    "ünïcødé ✓",
                    &[("trace_id", "abc"), ("span_id", "def")],
                ),
            ],
        ),
        stream(r#"{app="other"}"#, vec![entry(-5, "before the epoch", &[])]),
    ]);
    let (status, body) = push_proto(&r, &req);
    assert_eq!(status, 204, "{body}");
    assert_eq!(body, "");

    let e = r.entries();
    assert_eq!(e.len(), 3);
    assert_eq!(
        e[0].labels,
        labels(&[
            ("app", "api\"x\\y\n"),
            ("namespace", "prod"),
            ("pod", "raw\\n")
        ])
    );
    assert_eq!(
        e[0].labels_raw,
        r#"{namespace="prod", app="api\"x\\y\n", pod=`raw\n`}"#
    );
    assert_eq!(
        e[0].canonical_labels(),
        r#"{app="api\"x\\y\n", namespace="prod", pod="raw\\n"}"#
    );
    assert_eq!(e[0].ts_ns, 1_700_000_000_123_456_789);
    assert_eq!(e[0].line, "first line");
    assert_eq!(e[1].line, "ünïcødé ✓");
    assert_eq!(e[1].line_bytes, "ünïcødé ✓".as_bytes());
    assert!(e[1].valid_utf8);
    assert_eq!(
        e[1].metadata,
        vec![
            ("trace_id".to_string(), "abc".to_string()),
            ("span_id".to_string(), "def".to_string())
        ]
    );
    assert_eq!(e[2].ts_ns, -5);
    assert_eq!(e[2].tenant, "fake");
    assert_eq!(r.count(), 3);

    let s = r.streams();
    assert_eq!(s.len(), 2);
    assert_eq!(s[&("fake".into(), r#"{app="other"}"#.into())].len(), 1);

    let log = r.requests();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].status, 204);
    assert_eq!(log[0].entries, 3);
    assert_eq!(log[0].accepted, 3);
    assert_eq!(
        log[0].content_type.as_deref(),
        Some("application/x-protobuf")
    );
    assert_eq!(log[0].content_encoding, None);
    assert_eq!(log[0].tenant, None);
    assert!(log[0].error.is_none());
}

#[test]
fn protobuf_encodings_snappy_header_and_gzip_of_snappy() {
    let r = Receiver::start();
    let req = request(vec![stream(r#"{a="b"}"#, vec![entry(1, "x", &[])])]);
    let snappy = proto::encode_snappy(&req);
    let ct = ("Content-Type", "application/x-protobuf");
    assert_eq!(
        push(&r, &[ct, ("Content-Encoding", "snappy")], &snappy).0,
        204
    );
    assert_eq!(
        push(&r, &[ct, ("Content-Encoding", "gzip")], &gzip(&snappy)).0,
        204
    );
    assert_eq!(r.count(), 2);

    // gzip without the inner snappy is not what Loki decodes.
    use prost::Message;
    let (status, _) = push(
        &r,
        &[ct, ("Content-Encoding", "gzip")],
        &gzip(&req.encode_to_vec()),
    );
    assert_eq!(status, 400);
    assert_eq!(r.count(), 2);
}

#[test]
fn protobuf_without_snappy_is_rejected() {
    use prost::Message;
    let r = Receiver::start();
    let req = request(vec![stream(r#"{a="b"}"#, vec![entry(1, "x", &[])])]);
    let (status, body) = push(
        &r,
        &[("Content-Type", "application/x-protobuf")],
        &req.encode_to_vec(),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(r.count(), 0);
    assert_eq!(r.requests()[0].status, 400);
}

#[test]
fn garbage_bodies_are_rejected() {
    let r = Receiver::start();
    let garbage = snap::raw::Encoder::new()
        .compress_vec(b"\xff\xff\xff")
        .unwrap();
    assert_eq!(
        push(&r, &[("Content-Type", "application/x-protobuf")], &garbage).0,
        400
    );
    assert_eq!(
        push(&r, &[("Content-Type", "application/x-protobuf")], b"").0,
        400
    );
    assert_eq!(push_json(&r, "{not json").0, 400);
    assert_eq!(push_json(&r, "[]").0, 400);
    assert_eq!(
        push(
            &r,
            &[
                ("Content-Type", "application/json"),
                ("Content-Encoding", "gzip")
            ],
            b"not gzip"
        )
        .0,
        400
    );
    assert_eq!(r.count(), 0);
}

#[test]
fn missing_content_type_is_rejected_like_go_mime() {
    // Every Loki release runs mime.ParseMediaType("") first: "mime: no media type".
    let r = Receiver::start();
    let req = request(vec![stream(r#"{a="b"}"#, vec![entry(1, "x", &[])])]);
    let (status, body) = push(&r, &[], &proto::encode_snappy(&req));
    assert_eq!(status, 400);
    assert_eq!(body, "mime: no media type\n");
    assert_eq!(r.count(), 0);
    // Any other media type means protobuf; parameters are fine.
    assert_eq!(
        push(
            &r,
            &[("Content-Type", "application/octet-stream")],
            &proto::encode_snappy(&req)
        )
        .0,
        204
    );
    assert_eq!(
        push(
            &r,
            &[("Content-Type", "Application/JSON; charset=utf-8")],
            SIMPLE_JSON.as_bytes()
        )
        .0,
        204
    );
    assert_eq!(
        push(
            &r,
            &[("Content-Type", "application/json; charset")],
            SIMPLE_JSON.as_bytes()
        )
        .0,
        400
    );
    assert_eq!(
        push(&r, &[("Content-Type", "a/b/c")], SIMPLE_JSON.as_bytes()).0,
        400
    );
}

#[test]
fn json_plain() {
    let r = Receiver::start();
    let (status, body) = push_json(&r, SIMPLE_JSON);
    assert_eq!(status, 204, "{body}");
    assert_simple_json(&r);
}

#[test]
fn json_gzip() {
    let r = Receiver::start();
    let (status, body) = push(
        &r,
        &[
            ("Content-Type", "application/json"),
            ("Content-Encoding", "gzip"),
        ],
        &gzip(SIMPLE_JSON.as_bytes()),
    );
    assert_eq!(status, 204, "{body}");
    assert_simple_json(&r);
}

#[test]
fn json_deflate_is_raw_deflate_not_zlib() {
    let r = Receiver::start();
    let (status, body) = push(
        &r,
        &[
            ("Content-Type", "application/json"),
            ("Content-Encoding", "deflate"),
        ],
        &raw_deflate(SIMPLE_JSON.as_bytes()),
    );
    assert_eq!(status, 204, "{body}");
    assert_simple_json(&r);
    r.clear();
    // Go's flate.NewReader does not understand the zlib wrapper.
    let (status, _) = push(
        &r,
        &[
            ("Content-Type", "application/json"),
            ("Content-Encoding", "deflate"),
        ],
        &zlib(SIMPLE_JSON.as_bytes()),
    );
    assert_eq!(status, 400);
    assert_eq!(r.count(), 0);
}

#[test]
fn json_types_are_strict() {
    let r = Receiver::start();
    for bad in [
        r#"{"streams":[{"stream":{"a":"b"},"values":[[1570818238000000000,"x"]]}]}"#,
        r#"{"streams":[{"stream":{"a":"b"},"values":[["1570818238000000000",5]]}]}"#,
        r#"{"streams":[{"stream":{"a":"b"},"values":[["12abc","x"]]}]}"#,
        r#"{"streams":[{"stream":{"a":"b"},"values":[["1","x",{"k":1}]]}]}"#,
        r#"{"streams":[{"stream":{"a":"b"},"values":[["1","x",{},"extra"]]}]}"#,
        r#"{"streams":[{"stream":{"a":1},"values":[["1","x"]]}]}"#,
    ] {
        let (status, body) = push_json(&r, bad);
        assert_eq!(status, 400, "{bad} → {body}");
    }
    assert_eq!(r.count(), 0);
}

#[test]
fn unsupported_encoding_is_rejected() {
    let r = Receiver::start();
    for enc in ["br", "zstd", "GZIP", "identity"] {
        let (status, body) = push(
            &r,
            &[
                ("Content-Type", "application/json"),
                ("Content-Encoding", enc),
            ],
            SIMPLE_JSON.as_bytes(),
        );
        assert_eq!(status, 400);
        assert_eq!(body, format!("Content-Encoding \"{enc}\" not supported\n"));
    }
    assert_eq!(r.count(), 0);
}

#[test]
fn bad_label_names_and_syntax_reject_the_whole_request() {
    let r = Receiver::start();
    for bad in [
        r#"{1a="b"}"#,
        r#"{a-b="c"}"#,
        r#"{a.b="c"}"#,
        r#"{"a"="b"}"#,
        r#"{a="b""#,
        r#"{a="b" c="d"}"#,
        r#"{a=b}"#,
        r#"{a=~"b"}"#,
        r#"{a!="b"}"#,
        r#"{a="\q"}"#,
        "{a=\"line\nbreak\"}",
        r#"{a="\xff"}"#,
        r#"a b"#,
        "",
    ] {
        // A valid stream in the same request is not stored either.
        let req = request(vec![
            stream(r#"{ok="1"}"#, vec![entry(1, "good", &[])]),
            stream(bad, vec![entry(1, "x", &[])]),
        ]);
        let (status, body) = push_proto(&r, &req);
        assert_eq!(status, 400, "{bad:?}");
        assert!(body.starts_with("couldn't parse labels: "), "{body}");
    }
    // Unparseable labels fail even on a stream without entries (push.go parses all).
    let req = request(vec![stream(r#"{a-b="c"}"#, vec![])]);
    assert_eq!(push_proto(&r, &req).0, 400);
    // JSON label names go through the same parser.
    assert_eq!(
        push_json(
            &r,
            r#"{"streams":[{"stream":{"a-b":"c"},"values":[["1","x"]]}]}"#
        )
        .0,
        400
    );
    assert_eq!(r.count(), 0);
}

#[test]
fn selector_syntax_variants_accepted() {
    let r = Receiver::start();
    let cases: &[(&str, &[(&str, &str)])] = &[
        (r#"{a="b",}"#, &[("a", "b")]),
        ("  {\n a = 'b' ,\tc=\"d\" }  ", &[("a", "b"), ("c", "d")]),
        (
            r#"{a="\x41\101\u00e9\U0001F600\t\a"}"#,
            &[("a", "AAé😀\t\x07")],
        ),
        (r#"{a='it\'s'}"#, &[("a", "it's")]),
        (r#"up{job="x"}"#, &[("__name__", "up"), ("job", "x")]),
        (r#"{_x="1", A9_="2"}"#, &[("A9_", "2"), ("_x", "1")]),
    ];
    for (sel, want) in cases {
        r.clear();
        let req = request(vec![stream(sel, vec![entry(1, "x", &[])])]);
        let (status, body) = push_proto(&r, &req);
        assert_eq!(status, 204, "{sel:?}: {body}");
        assert_eq!(r.entries()[0].labels, labels(want), "{sel:?}");
    }
}

#[test]
fn canonical_labels_use_go_quoting() {
    let r = Receiver::start();
    let req = request(vec![stream(
        r#"{b="tab\there", a="nl\nq\"bs\\", c="\x01\u00e9"}"#,
        vec![entry(1, "x", &[])],
    )]);
    assert_eq!(push_proto(&r, &req).0, 204);
    let key = r.streams().into_keys().next().unwrap();
    assert_eq!(key.1, r#"{a="nl\nq\"bs\\", b="tab\there", c="\x01é"}"#);
}

#[test]
fn empty_label_set_rejected_per_stream() {
    let r = Receiver::start();
    for empty in ["{}", r#"{a=""}"#] {
        r.clear();
        let req = request(vec![
            stream(empty, vec![entry(1, "x", &[])]),
            stream(r#"{ok="1"}"#, vec![entry(2, "kept", &[])]),
        ]);
        let (status, body) = push_proto(&r, &req);
        assert_eq!(status, 400);
        assert_eq!(
            body,
            "error at least one label pair is required per stream\n"
        );
        // Partial success: the valid stream is stored.
        assert_eq!(r.lines(), vec!["kept".to_string()]);
    }
    // An empty stream with an empty label set is simply skipped.
    r.clear();
    let req = request(vec![stream("{}", vec![])]);
    assert_eq!(push_proto(&r, &req).0, 204);
    assert_eq!(r.count(), 0);
}

#[test]
fn zero_streams_is_422() {
    let r = Receiver::start();
    assert_eq!(push_proto(&r, &request(vec![])).0, 422);
    assert_eq!(push_json(&r, r#"{"streams":[]}"#).0, 422);
}

#[test]
fn empty_valued_labels_are_dropped() {
    let r = Receiver::start();
    let req = request(vec![stream(r#"{a="b", c=""}"#, vec![entry(1, "x", &[])])]);
    assert_eq!(push_proto(&r, &req).0, 204);
    assert_eq!(r.entries()[0].labels, labels(&[("a", "b")]));
    let req = request(vec![stream(r#"{a="b"}"#, vec![entry(2, "y", &[])])]);
    assert_eq!(push_proto(&r, &req).0, 204);
    assert_eq!(
        r.streams().len(),
        1,
        "same stream once the empty label is dropped"
    );
}

#[test]
fn duplicate_and_too_many_labels_rejected_per_stream() {
    let r = Receiver::start();
    let req = request(vec![
        stream(r#"{a="1", a="2"}"#, vec![entry(1, "x", &[])]),
        stream(r#"{ok="1"}"#, vec![entry(1, "kept", &[])]),
    ]);
    let (status, body) = push_proto(&r, &req);
    assert_eq!(status, 400);
    assert!(body.contains("has duplicate label name: 'a'"), "{body}");
    assert_eq!(r.lines(), vec!["kept".to_string()]);

    let many: Vec<String> = (0..16).map(|i| format!("l{i:02}=\"v\"")).collect();
    let sel = format!("{{{}}}", many.join(", "));
    let (status, body) = push_proto(&r, &request(vec![stream(&sel, vec![entry(1, "x", &[])])]));
    assert_eq!(status, 400);
    assert!(body.contains("has 16 label names; limit 15"), "{body}");
    assert_eq!(r.count(), 1);
}

#[test]
fn partial_success_on_long_line() {
    let r = Receiver::start_with(Options {
        max_line_size: 10,
        ..Options::default()
    });
    let req = request(vec![stream(
        r#"{app="a"}"#,
        vec![
            entry(1, "short", &[]),
            entry(2, "x".repeat(11), &[]),
            entry(3, "also short", &[]),
        ],
    )]);
    let (status, body) = push_proto(&r, &req);
    assert_eq!(status, 400);
    assert_eq!(
        body,
        "Max entry size '10' bytes exceeded for stream '{app=\"a\"}' while adding an entry with length '11' bytes\n"
    );
    assert_eq!(
        r.lines(),
        vec!["short".to_string(), "also short".to_string()]
    );
    let log = &r.requests()[0];
    assert_eq!((log.entries, log.accepted, log.status), (3, 2, 400));

    // Two identical errors are grouped the way Loki's GroupedErrors does.
    r.clear();
    let req = request(vec![stream(
        r#"{app="a"}"#,
        vec![entry(1, "y".repeat(11), &[]), entry(2, "y".repeat(11), &[])],
    )]);
    let (status, body) = push_proto(&r, &req);
    assert_eq!(status, 400);
    assert!(
        body.starts_with("2 errors like: Max entry size '10'"),
        "{body}"
    );
    assert_eq!(r.count(), 0);
}

#[test]
fn default_max_line_size_is_256k() {
    let r = Receiver::start();
    let req = request(vec![stream(
        r#"{a="b"}"#,
        vec![
            entry(1, vec![b'x'; 256 * 1024], &[]),
            entry(2, vec![b'x'; 256 * 1024 + 1], &[]),
        ],
    )]);
    let (status, body) = push_proto(&r, &req);
    assert_eq!(status, 400);
    assert!(
        body.contains("Max entry size '262144' bytes exceeded"),
        "{body}"
    );
    assert!(body.contains("with length '262145' bytes"), "{body}");
    assert_eq!(r.count(), 1);
}

#[test]
fn invalid_utf8_line_is_recorded() {
    let r = Receiver::start();
    let bad: &[u8] = b"caf\xe9 \xff\xfe";
    let req = request(vec![stream(
        r#"{a="b"}"#,
        vec![entry(1, bad, &[]), entry(2, "ok", &[])],
    )]);
    assert_eq!(push_proto(&r, &req).0, 204);
    let e = r.entries();
    assert_eq!(e[0].line_bytes, bad);
    assert!(!e[0].valid_utf8);
    assert!(e[0].line.contains('\u{FFFD}'));
    assert!(e[1].valid_utf8);
}

#[test]
fn tenant_header_fake_and_auth() {
    let r = Receiver::start();
    let body = proto::encode_snappy(&request(vec![stream(
        r#"{a="b"}"#,
        vec![entry(1, "x", &[])],
    )]));
    let ct = ("Content-Type", "application/x-protobuf");
    assert_eq!(push(&r, &[ct, ("X-Scope-OrgID", "team-a")], &body).0, 204);
    assert_eq!(push(&r, &[ct], &body).0, 204);
    let tenants: Vec<String> = r.entries().into_iter().map(|e| e.tenant).collect();
    assert_eq!(tenants, vec!["team-a".to_string(), "fake".to_string()]);
    assert_eq!(r.requests()[0].tenant.as_deref(), Some("team-a"));
    assert_eq!(r.streams().len(), 2);

    for bad in ["a:b", "a|b", ".", "..", "sp ace", "ü", &"t".repeat(151)] {
        let (status, msg) = push(&r, &[ct, ("X-Scope-OrgID", bad)], &body);
        assert_eq!(status, 400, "{bad}: {msg}");
    }
    assert_eq!(
        push(&r, &[ct, ("X-Scope-OrgID", &"t".repeat(150))], &body).0,
        204
    );
    assert_eq!(
        push(&r, &[ct, ("X-Scope-OrgID", "a!-_.*'()Z9")], &body).0,
        204
    );

    let auth = Receiver::start_with(Options {
        auth_enabled: true,
        ..Options::default()
    });
    assert_eq!(push(&auth, &[ct], &body), (401, "no org id\n".to_string()));
    assert_eq!(push(&auth, &[ct, ("X-Scope-OrgID", "t1")], &body).0, 204);
    assert_eq!(auth.entries()[0].tenant, "t1");
    assert_eq!(auth.count(), 1);
}

#[test]
fn forced_status_modes_store_nothing() {
    let r = Receiver::start();
    let req = request(vec![stream(r#"{a="b"}"#, vec![entry(1, "x", &[])])]);
    for status in [429, 500, 503] {
        r.set_mode(Mode::Status(status));
        assert_eq!(push_proto(&r, &req).0, status);
    }
    assert_eq!(r.count(), 0);
    r.set_mode(Mode::Normal);
    assert_eq!(push_proto(&r, &req).0, 204);
    assert_eq!(r.count(), 1);
    let statuses: Vec<u16> = r.requests().iter().map(|l| l.status).collect();
    assert_eq!(statuses, vec![429, 500, 503, 204]);
}

#[test]
fn fail_next_then_normal() {
    let r = Receiver::start();
    let req = request(vec![stream(r#"{a="b"}"#, vec![entry(1, "x", &[])])]);
    r.set_mode(Mode::FailNext {
        count: 2,
        status: 503,
    });
    assert_eq!(push_proto(&r, &req).0, 503);
    assert_eq!(push_proto(&r, &req).0, 503);
    assert_eq!(push_proto(&r, &req).0, 204);
    assert_eq!(push_proto(&r, &req).0, 204);
    assert_eq!(r.mode(), Mode::Normal);
    assert_eq!(r.count(), 2);
}

#[test]
fn slow_mode_still_stores() {
    let r = Receiver::start();
    r.set_mode(Mode::Slow(Duration::from_millis(50)));
    let req = request(vec![stream(r#"{a="b"}"#, vec![entry(1, "x", &[])])]);
    assert_eq!(push_proto(&r, &req).0, 204);
    assert_eq!(r.count(), 1);
}

#[test]
fn drop_connection_modes() {
    let r = Receiver::start();
    let body = proto::encode_snappy(&request(vec![stream(
        r#"{a="b"}"#,
        vec![entry(1, "x", &[])],
    )]));
    let h = [("Content-Type", "application/x-protobuf")];

    r.set_mode(Mode::DropConnection);
    assert!(send(r.addr(), "POST", "/loki/api/v1/push", &h, &body).is_err());
    assert_eq!(r.count(), 0);

    r.set_mode(Mode::AcceptThenDrop);
    assert!(send(r.addr(), "POST", "/loki/api/v1/push", &h, &body).is_err());
    assert_eq!(r.count(), 1, "accepted although the client saw no answer");

    r.set_mode(Mode::Normal);
    assert_eq!(push(&r, &h, &body).0, 204);
    assert_eq!(
        r.duplicates().len(),
        1,
        "the resend is visible as a duplicate"
    );
    let statuses: Vec<u16> = r.requests().iter().map(|l| l.status).collect();
    assert_eq!(statuses, vec![0, 0, 204]);
}

#[test]
fn ready_and_unknown_paths() {
    let r = Receiver::start();
    assert_eq!(
        send(r.addr(), "GET", "/ready", &[], b"").unwrap(),
        (200, "ready\n".into())
    );
    assert_eq!(send(r.addr(), "GET", "/nope", &[], b"").unwrap().0, 404);
    assert_eq!(
        send(r.addr(), "GET", "/loki/api/v1/push", &[], b"")
            .unwrap()
            .0,
        405
    );
    assert!(r.requests().is_empty());
}

#[test]
fn body_over_limit_is_413() {
    let r = Receiver::start_with(Options {
        max_recv_msg_size: 1024,
        ..Options::default()
    });
    let big = vec![b'x'; 4096];
    let (status, body) = push(&r, &[("Content-Type", "application/x-protobuf")], &big);
    assert_eq!(status, 413, "{body}");
    assert_eq!(r.requests()[0].bytes, 4096);
}

#[test]
fn too_old_and_too_new_when_enabled() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let hour = 3_600_000_000_000i64;
    let r = Receiver::start_with(Options {
        reject_old_samples_max_age: Some(Duration::from_secs(7 * 24 * 3600)),
        creation_grace_period: Some(Duration::from_secs(600)),
        ..Options::default()
    });
    let req = request(vec![stream(
        r#"{a="b"}"#,
        vec![
            entry(now - 8 * 24 * hour, "old", &[]),
            entry(now, "now", &[]),
            entry(now + hour, "future", &[]),
        ],
    )]);
    let (status, body) = push_proto(&r, &req);
    assert_eq!(status, 400);
    assert!(body.contains("timestamp too old"), "{body}");
    assert!(body.contains("timestamp too new"), "{body}");
    assert_eq!(r.lines(), vec!["now".to_string()]);
    // Off by default: fixtures with old timestamps are accepted.
    let plain = Receiver::start();
    assert_eq!(push_proto(&plain, &req).0, 204);
}

#[test]
fn wait_until_and_clear() {
    let r = Receiver::start();
    assert!(!r.wait_until(Duration::from_millis(30), |r| r.count() > 0));
    let req = request(vec![stream(
        r#"{a="b"}"#,
        vec![entry(1, "x", &[]), entry(2, "y", &[])],
    )]);
    let addr = r.addr();
    let body = proto::encode_snappy(&req);
    let t = std::thread::spawn(move || {
        send(
            addr,
            "POST",
            "/loki/api/v1/push",
            &[("Content-Type", "application/x-protobuf")],
            &body,
        )
    });
    assert!(r.wait_for_count(2, WAIT));
    assert_eq!(t.join().unwrap().unwrap().0, 204);
    r.clear();
    assert_eq!(
        (r.count(), r.entries().len(), r.requests().len()),
        (0, 0, 0)
    );
}

#[test]
fn keep_entries_false_counts_only() {
    let r = Receiver::start_with(Options {
        keep_entries: false,
        ..Options::default()
    });
    let req = request(vec![stream(
        r#"{a="b"}"#,
        vec![entry(1, "x", &[]), entry(2, "y", &[])],
    )]);
    assert_eq!(push_proto(&r, &req).0, 204);
    assert_eq!(r.count(), 2);
    assert!(r.entries().is_empty());
}

#[test]
fn reqwest_keep_alive_round_trips() {
    let r = Receiver::start();
    let url = r.push_url();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let statuses = rt.block_on(async move {
        let client = reqwest::Client::new();
        let mut out = Vec::new();
        for i in 0..3 {
            let req = request(vec![stream(
                r#"{a="b"}"#,
                vec![entry(i, format!("line {i}"), &[])],
            )]);
            let resp = client
                .post(&url)
                .header("Content-Type", "application/x-protobuf")
                .body(proto::encode_snappy(&req))
                .send()
                .await
                .unwrap();
            out.push(resp.status().as_u16());
        }
        out
    });
    assert_eq!(statuses, vec![204, 204, 204]);
    assert_eq!(r.lines(), vec!["line 0", "line 1", "line 2"]);
}

#[test]
fn drop_stops_the_server() {
    let r = Receiver::start();
    let addr = r.addr();
    drop(r);
    assert!(send(addr, "GET", "/ready", &[], b"").is_err());
}
