//! Real journal files through the real journalctl: what the command builder
//! asks for is what the record parser gets. Skipped (with a message) when
//! systemd-journal-remote is not installed.

use super::command::{JournalSpec, Journals, Start};
use super::record::Record;
use super::testkit::{export_entry, make_journal, run_lines};
use crate::entry::Timestamp;

const T0: u64 = 1_700_000_000_000_000;
const KLOG: &[u8] = b"I1114 22:13:20.000001    1234 kubelet.go:2157] \"SyncLoop ADD\" source=\"api\" pods=[\"kube-system/coredns-5d78c9869d-abcde\"]";

/// 13 entries: kubelet, containerd, a binary MESSAGE, a repeated field,
/// then 9 more app lines (more than journalctl's 10-line default after a
/// cursor).
fn export() -> Vec<u8> {
    let mut e = Vec::new();
    let unit = |u: &'static str| ("_SYSTEMD_UNIT", u.as_bytes());
    export_entry(
        &mut e,
        T0 + 1,
        &[
            unit("kubelet.service"),
            ("PRIORITY", b"6"),
            ("MESSAGE", KLOG),
        ],
    );
    export_entry(
        &mut e,
        T0 + 2,
        &[
            unit("containerd.service"),
            ("PRIORITY", b"3"),
            ("MESSAGE", b"level=error msg=\"RunPodSandbox failed\""),
        ],
    );
    export_entry(
        &mut e,
        T0 + 3,
        &[unit("app.service"), ("MESSAGE", b"bin\xff\x00x")],
    );
    export_entry(
        &mut e,
        T0 + 4,
        &[
            unit("app.service"),
            ("TAG", b"a"),
            ("TAG", b"b"),
            ("MESSAGE", b"repeated"),
        ],
    );
    for i in 5..=13u64 {
        let m = format!("app line {i}");
        export_entry(
            &mut e,
            T0 + i,
            &[unit("app.service"), ("MESSAGE", m.as_bytes())],
        );
    }
    e
}

#[test]
fn journalctl_output_of_real_journal_files_parses() {
    let dir = tempfile::tempdir().unwrap();
    let Some(file) = make_journal(dir.path(), &export()) else {
        return;
    };
    let spec = JournalSpec {
        journals: Journals::Directory(dir.path().into()),
        matches: vec![],
    };
    let lines = run_lines(&spec, &Start::Since(Timestamp(0)), 13);
    assert_eq!(lines.len(), 13);
    let recs: Vec<Record> = lines.iter().map(|l| Record::parse(l).unwrap()).collect();
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r.timestamp, Timestamp((T0 as i64 + i as i64 + 1) * 1000));
    }
    assert_eq!(recs[0].message().unwrap().as_bytes(), KLOG);
    assert_eq!(recs[0].fields["_SYSTEMD_UNIT"], "kubelet.service");
    assert_eq!(
        recs[1]
            .journal_labels()
            .iter()
            .find(|(k, _)| k == "__journal_priority_keyword")
            .unwrap()
            .1,
        "error"
    );
    assert_eq!(
        (recs[2].message(), recs[2].lossy),
        (Some("bin\u{FFFD}\u{0}x"), 1)
    );
    assert_eq!((recs[3].fields["TAG"].as_str(), recs[3].repeated), ("b", 1));

    // Resume after the first cursor: all 12 others (`--lines=all`), not 10.
    let after = Start::AfterCursor(recs[0].cursor.clone());
    let rest = run_lines(&spec, &after, 12);
    assert_eq!(rest.len(), 12);
    assert_eq!(Record::parse(&rest[0]).unwrap().cursor, recs[1].cursor);

    // `--file` and matches as arguments: only containerd's entry.
    let spec = JournalSpec {
        journals: Journals::File(file),
        matches: vec![
            "_SYSTEMD_UNIT=containerd.service".into(),
            "_SYSTEMD_UNIT=nothing.service".into(),
        ],
    };
    let only = run_lines(&spec, &Start::Since(Timestamp(0)), 1);
    assert_eq!(only.len(), 1);
    assert_eq!(
        Record::parse(&only[0]).unwrap().fields["_SYSTEMD_UNIT"],
        "containerd.service"
    );
}
