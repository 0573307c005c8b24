//! Table tests over lines journalctl 252 printed for journal files made
//! with systemd-journal-remote, plus a property test that no input panics.

use super::*;
use proptest::prelude::*;

const KUBELET: &str = r#"{"PRIORITY":"6","_HOSTNAME":"node-1","__MONOTONIC_TIMESTAMP":"1000","SYSLOG_IDENTIFIER":"kubelet","__CURSOR":"s=249f46b43d1240cd9aae047c106279b1;i=1;b=0123456789abcdef0123456789abcdef;m=3e8;t=60a24181e4001;x=e3495618c71c35b9","MESSAGE":"I1114 22:13:20.000001    1234 kubelet.go:2157] \"SyncLoop ADD\" source=\"api\" pods=[\"kube-system/coredns-5d78c9869d-abcde\"]","_SYSTEMD_UNIT":"kubelet.service","_TRANSPORT":"stdout","__REALTIME_TIMESTAMP":"1700000000000001","_BOOT_ID":"0123456789abcdef0123456789abcdef"}"#;
const CONTAINERD: &str = r#"{"__MONOTONIC_TIMESTAMP":"1000","__CURSOR":"s=249f46b43d1240cd9aae047c106279b1;i=2;b=0123456789abcdef0123456789abcdef;m=3e8;t=60a24181e4002;x=cee5c2e16175c6f6","__REALTIME_TIMESTAMP":"1700000000000002","_BOOT_ID":"0123456789abcdef0123456789abcdef","MESSAGE":"time=\"2023-11-14T22:13:20.000000002Z\" level=info msg=\"RunPodSandbox for &PodSandboxMetadata{Name:coredns,Uid:abc,Namespace:kube-system,Attempt:0,}\"","PRIORITY":"6","_SYSTEMD_UNIT":"containerd.service"}"#;
const BINARY: &str = r#"{"_SYSTEMD_UNIT":"app.service","MESSAGE":[98,105,110,255,0,120],"__CURSOR":"s=249f46b43d1240cd9aae047c106279b1;i=3;b=0123456789abcdef0123456789abcdef;m=3e8;t=60a24181e4003;x=54b0be97206fd24e","__MONOTONIC_TIMESTAMP":"1000","_BOOT_ID":"0123456789abcdef0123456789abcdef","__REALTIME_TIMESTAMP":"1700000000000003"}"#;
const REPEATED: &str = r#"{"_SYSTEMD_UNIT":"app.service","__REALTIME_TIMESTAMP":"1700000000000004","__CURSOR":"s=249f46b43d1240cd9aae047c106279b1;i=4;b=0123456789abcdef0123456789abcdef;m=3e8;t=60a24181e4004;x=5580a05c2c73b673","TAG":["a","b"],"__MONOTONIC_TIMESTAMP":"1000","_BOOT_ID":"0123456789abcdef0123456789abcdef","MESSAGE":"repeated"}"#;
const NO_MESSAGE: &str = r#"{"_SYSTEMD_UNIT":"app.service","__REALTIME_TIMESTAMP":"1700000000000005","_BOOT_ID":"0123456789abcdef0123456789abcdef","__CURSOR":"s=249f46b43d1240cd9aae047c106279b1;i=5;b=0123456789abcdef0123456789abcdef;m=3e8;t=60a24181e4005;x=ca384adf7d71bab1","CODE_LINE":"1","__MONOTONIC_TIMESTAMP":"1000"}"#;

fn label<'a>(l: &'a [(String, String)], k: &str) -> Option<&'a str> {
    l.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

#[test]
fn kubelet_klog_line() {
    let r = Record::parse(KUBELET.as_bytes()).unwrap();
    assert_eq!(
        r.line(false).as_deref(),
        Some("I1114 22:13:20.000001    1234 kubelet.go:2157] \"SyncLoop ADD\" source=\"api\" pods=[\"kube-system/coredns-5d78c9869d-abcde\"]")
    );
    assert_eq!(r.timestamp, Timestamp(1_700_000_000_000_001_000));
    assert!(r
        .cursor
        .starts_with("s=249f46b43d1240cd9aae047c106279b1;i=1;"));
    let l = r.journal_labels();
    assert_eq!(
        label(&l, "__journal__systemd_unit"),
        Some("kubelet.service")
    );
    assert_eq!(label(&l, "__journal_priority"), Some("6"));
    assert_eq!(label(&l, "__journal_priority_keyword"), Some("info"));
    assert_eq!(label(&l, "__journal__hostname"), Some("node-1"));
    assert_eq!(label(&l, "__journal_syslog_identifier"), Some("kubelet"));
    assert_eq!(
        label(&l, "__journal__boot_id"),
        Some("0123456789abcdef0123456789abcdef")
    );
    // Address fields are not data fields: no label, as with sdjournal.
    for k in [
        "__journal___cursor",
        "__journal___realtime_timestamp",
        "__journal___monotonic_timestamp",
    ] {
        assert_eq!(label(&l, k), None, "{k}");
    }
    assert_eq!((r.lossy, r.repeated), (0, 0));
}

#[test]
fn containerd_line_as_json() {
    let r = Record::parse(CONTAINERD.as_bytes()).unwrap();
    // Sorted keys, HTML escaped, no address fields: jsoniter's marshal of
    // sdjournal's Fields map.
    assert_eq!(
        r.line(true).unwrap(),
        r#"{"MESSAGE":"time=\"2023-11-14T22:13:20.000000002Z\" level=info msg=\"RunPodSandbox for \u0026PodSandboxMetadata{Name:coredns,Uid:abc,Namespace:kube-system,Attempt:0,}\"","PRIORITY":"6","_BOOT_ID":"0123456789abcdef0123456789abcdef","_SYSTEMD_UNIT":"containerd.service"}"#
    );
    assert_eq!(r.timestamp, Timestamp(1_700_000_000_000_002_000));
}

#[test]
fn binary_message_is_decoded_lossily_and_counted() {
    let r = Record::parse(BINARY.as_bytes()).unwrap();
    assert_eq!(r.message(), Some("bin\u{FFFD}\u{0}x"));
    assert_eq!(r.lossy, 1);
    assert_eq!(r.line(true).unwrap(), "{\"MESSAGE\":\"bin\u{FFFD}\\u0000x\",\"_BOOT_ID\":\"0123456789abcdef0123456789abcdef\",\"_SYSTEMD_UNIT\":\"app.service\"}");
    // Valid UTF-8 in a byte array (binary only for its NUL) is not lossy.
    let r =
        Record::parse(br#"{"__CURSOR":"c","__REALTIME_TIMESTAMP":"1","M":[104,105,0]}"#).unwrap();
    assert_eq!((r.fields["M"].as_str(), r.lossy), ("hi\0", 0));
}

#[test]
fn repeated_field_keeps_the_last_value() {
    let r = Record::parse(REPEATED.as_bytes()).unwrap();
    assert_eq!(r.fields["TAG"], "b");
    assert_eq!(r.repeated, 1);
    assert_eq!(label(&r.journal_labels(), "__journal_tag"), Some("b"));
    // A repeated field whose values are binary.
    let r = Record::parse(br#"{"__CURSOR":"c","__REALTIME_TIMESTAMP":"1","X":["a",[98,255]]}"#)
        .unwrap();
    assert_eq!(
        (r.fields["X"].as_str(), r.lossy, r.repeated),
        ("b\u{FFFD}", 1, 1)
    );
}

#[test]
fn missing_message_ships_nothing_but_json_ships_the_fields() {
    let r = Record::parse(NO_MESSAGE.as_bytes()).unwrap();
    assert_eq!(r.line(false), None);
    assert_eq!(
        r.line(true).unwrap(),
        r#"{"CODE_LINE":"1","_BOOT_ID":"0123456789abcdef0123456789abcdef","_SYSTEMD_UNIT":"app.service"}"#
    );
    assert_eq!(
        label(&r.journal_labels(), "__journal_priority_keyword"),
        None
    );
}

#[test]
fn priority_keywords() {
    let want = [
        "emerg", "alert", "crit", "error", "warning", "notice", "info", "debug",
    ];
    for (i, k) in want.iter().enumerate() {
        assert_eq!(priority_keyword(&i.to_string()), *k);
    }
    assert_eq!(priority_keyword("8"), "8");
    assert_eq!(priority_keyword(""), "");
}

#[test]
fn malformed_input_is_a_clear_error() {
    let cases: &[(&[u8], ParseError)] = &[
        (b"-- cursor: s=abc", ParseError::NotJson(String::new())),
        (b"{\"MESSAGE\":\"x\"", ParseError::NotJson(String::new())),
        (b"[1,2]", ParseError::NotObject),
        (
            br#"{"__REALTIME_TIMESTAMP":"1","MESSAGE":"x"}"#,
            ParseError::Missing("__CURSOR"),
        ),
        (
            br#"{"__CURSOR":"c","MESSAGE":"x"}"#,
            ParseError::Missing("__REALTIME_TIMESTAMP"),
        ),
        (
            br#"{"__CURSOR":"c","__REALTIME_TIMESTAMP":"soon"}"#,
            ParseError::BadTimestamp("\"soon\"".into()),
        ),
        (
            br#"{"__CURSOR":"c","__REALTIME_TIMESTAMP":"1","M":[1,300]}"#,
            ParseError::BadValue {
                field: "M".into(),
                why: "byte array holds something other than 0..=255",
            },
        ),
        (
            br#"{"__CURSOR":"c","__REALTIME_TIMESTAMP":"1","M":{"a":1}}"#,
            ParseError::BadValue {
                field: "M".into(),
                why: "not a string or byte array",
            },
        ),
    ];
    for (input, want) in cases {
        let got = Record::parse(input).unwrap_err();
        match (&got, want) {
            (ParseError::NotJson(m), ParseError::NotJson(_)) => assert!(!m.is_empty()),
            _ => assert_eq!(&got, want, "{}", String::from_utf8_lossy(input)),
        }
        assert!(!got.to_string().is_empty());
    }
    let e = Record::parse(b"{}").unwrap_err().to_string();
    assert_eq!(e, "journal entry has no __CURSOR");
}

#[test]
fn null_value_is_no_value_and_huge_timestamp_saturates() {
    let r = Record::parse(
        br#"{"__CURSOR":"c","__REALTIME_TIMESTAMP":"18446744073709551615","BIG":null}"#,
    )
    .unwrap();
    assert!(r.fields.is_empty());
    assert_eq!(r.timestamp, Timestamp(i64::MAX));
}

#[test]
fn cursor_time() {
    let c = "s=249f46b43d1240cd9aae047c106279b1;i=1;b=0123456789abcdef0123456789abcdef;m=3e8;t=60a24181e4001;x=e3495618c71c35b9";
    assert_eq!(
        cursor_realtime(c),
        Some(Timestamp(1_700_000_000_000_001_000))
    );
    assert_eq!(cursor_realtime("s=1;i=2"), None);
    assert_eq!(cursor_realtime("t=zz"), None);
    assert_eq!(cursor_realtime("t=ffffffffffffffff"), None);
}

fn json_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        any::<String>().prop_map(|s| serde_json::Value::String(s).to_string()),
        proptest::collection::vec(any::<u16>(), 0..6).prop_map(|v| format!("{v:?}")),
        Just("null".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        proptest::collection::vec(inner, 0..4).prop_map(|v| format!("[{}]", v.join(",")))
    })
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = Record::parse(&b);
    }

    #[test]
    fn arbitrary_objects_never_panic(
        kv in proptest::collection::vec(("(__)?[A-Z_]{0,6}", json_value()), 0..6),
        cursor in any::<bool>(),
    ) {
        let mut s = String::from("{");
        if cursor {
            s.push_str(r#""__CURSOR":"t=1","__REALTIME_TIMESTAMP":"5","#);
        }
        let body: Vec<String> = kv
            .iter()
            .map(|(k, v)| format!("{}:{v}", serde_json::Value::String(k.clone())))
            .collect();
        s.push_str(&body.join(","));
        s.push('}');
        if let Ok(r) = Record::parse(s.as_bytes()) {
            let _ = r.line(true);
            let _ = r.journal_labels();
            prop_assert!(r.fields.keys().all(|k| !k.starts_with("__")));
        }
    }
}
