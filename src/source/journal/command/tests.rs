use super::*;
use std::time::UNIX_EPOCH;

fn strs(a: &[OsString]) -> Vec<String> {
    a.iter().map(|s| s.to_string_lossy().into_owned()).collect()
}

fn spec(journals: Journals, matches: &[&str]) -> JournalSpec {
    JournalSpec {
        journals,
        matches: matches.iter().map(|s| s.to_string()).collect(),
    }
}

const NOW: u64 = 1_700_000_000;
const CURSOR: &str = "s=249f;i=1;b=0123;m=3e8;t=60a24181e4001;x=e349"; // t = NOW s + 1 µs

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW)
}

#[test]
fn first_start_uses_since_max_age() {
    let start = Start::resolve(None, Duration::from_secs(7 * 3600), now());
    assert_eq!(
        start,
        Start::Since(Timestamp((NOW as i64 - 7 * 3600) * 1_000_000_000))
    );
    assert_eq!(
        strs(&args(&spec(Journals::Local, &[]), &start)),
        [
            "--output=json",
            "--follow",
            "--all",
            "--lines=all",
            "--since=@1699974800"
        ]
    );
    // An empty saved cursor is no cursor.
    assert_eq!(
        Start::resolve(Some(""), Duration::ZERO, now()),
        Start::Since(Timestamp(NOW as i64 * 1_000_000_000))
    );
}

#[test]
fn saved_cursor_resumes_after_it_with_lines_all() {
    let start = Start::resolve(Some(CURSOR), Duration::from_secs(3600), now());
    assert_eq!(start, Start::AfterCursor(CURSOR.into()));
    let a = strs(&args(
        &spec(Journals::Directory("/var/log/journal".into()), &[]),
        &start,
    ));
    assert_eq!(
        a,
        [
            "--output=json",
            "--follow",
            "--all",
            "--lines=all",
            "--directory=/var/log/journal",
            &format!("--after-cursor={CURSOR}"),
        ]
    );
    assert!(
        !a.iter().any(|s| s.starts_with("--since")),
        "journalctl refuses both"
    );
}

#[test]
fn cursor_older_than_max_age_or_unreadable_falls_back_to_since() {
    let later = now() + Duration::from_secs(2 * 3600);
    let since = Timestamp((NOW as i64 + 3600) * 1_000_000_000);
    assert_eq!(
        Start::resolve(Some(CURSOR), Duration::from_secs(3600), later),
        Start::Since(since)
    );
    assert_eq!(
        Start::resolve(Some("s=1;i=2"), Duration::from_secs(3600), later),
        Start::Since(since)
    );
}

#[test]
fn file_path_uses_file_and_matches_follow_the_double_dash() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("system.journal");
    std::fs::write(&f, b"").unwrap();
    assert_eq!(Journals::from_path(Some(&f)), Journals::File(f.clone()));
    assert_eq!(
        Journals::from_path(Some(dir.path())),
        Journals::Directory(dir.path().into())
    );
    let missing = dir.path().join("nope");
    assert_eq!(
        Journals::from_path(Some(&missing)),
        Journals::Directory(missing)
    );
    assert_eq!(Journals::from_path(None), Journals::Local);
    assert_eq!(Journals::from_path(Some(Path::new(""))), Journals::Local);

    let s = spec(
        Journals::File(f.clone()),
        &[
            "_SYSTEMD_UNIT=kubelet.service",
            "_SYSTEMD_UNIT=containerd.service",
        ],
    );
    let a = strs(&args(&s, &Start::AfterCursor("c".into())));
    assert_eq!(
        a[4..],
        [
            format!("--file={}", f.display()),
            "--after-cursor=c".into(),
            "--".into(),
            "_SYSTEMD_UNIT=kubelet.service".into(),
            "_SYSTEMD_UNIT=containerd.service".into(),
        ]
    );
}

#[test]
fn spec_from_config_splits_matches_into_arguments() {
    let c: JournalConfig = serde_yaml_ng::from_str(
        "matches: \"_SYSTEMD_UNIT=kubelet.service PRIORITY=3\"\npath: /run/log/journal",
    )
    .unwrap();
    let s = JournalSpec::from_config(&c).unwrap();
    assert_eq!(s.matches, ["_SYSTEMD_UNIT=kubelet.service", "PRIORITY=3"]);
    assert_eq!(s.journals, Journals::Directory("/run/log/journal".into()));
    // A value with a space cannot be expressed (Promtail splits on spaces
    // too); a shell metacharacter is just part of one argument.
    let c = JournalConfig {
        matches: "MESSAGE=a;rm".into(),
        ..Default::default()
    };
    let cmd = command(
        Path::new("journalctl"),
        &JournalSpec::from_config(&c).unwrap(),
        &Start::AfterCursor("c".into()),
    );
    assert_eq!(cmd.get_program(), "journalctl");
    assert_eq!(cmd.get_args().last().unwrap(), "MESSAGE=a;rm");
    let bad = JournalConfig {
        matches: "kubelet".into(),
        ..Default::default()
    };
    assert!(JournalSpec::from_config(&bad).is_err());
}
