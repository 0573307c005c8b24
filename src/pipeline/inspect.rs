//! `-inspect`: for each entry, what every stage changed — labels added,
//! removed or changed, extracted values, the timestamp, the line and the
//! structured metadata — printed to stderr, in colour on a terminal
//! (Promtail's `--inspect`).
//!
//! Owns: the switch ([`enable`]; pipelines built afterwards inspect) and
//! the diff of one entry before and after one stage ([`Snapshot`],
//! [`report`]).
//!
//! Must never: cost anything when off (a pipeline checks one bool per
//! stage run), or change what the stages do.

use crate::entry::{Entry, Timestamp};
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns inspection on for pipelines built from now on.
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// An entry as a stage received it.
pub struct Snapshot {
    labels: Vec<(String, String)>,
    extracted: Vec<(String, String)>,
    metadata: Vec<(String, String)>,
    timestamp: Timestamp,
    line: String,
}

impl Snapshot {
    pub fn of(e: &Entry) -> Snapshot {
        Snapshot {
            labels: e
                .labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            extracted: e
                .extracted
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            metadata: e
                .metadata
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            timestamp: e.timestamp,
            line: e.line.to_string(),
        }
    }
}

struct Paint {
    on: bool,
}

impl Paint {
    fn add(&self, s: &str) -> String {
        self.wrap("32", &format!("+{s}"))
    }
    fn del(&self, s: &str) -> String {
        self.wrap("31", &format!("-{s}"))
    }
    fn chg(&self, s: &str) -> String {
        self.wrap("33", s)
    }
    fn wrap(&self, code: &str, s: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
}

/// The differences between `before` and `after` as text lines, empty if
/// the stage changed nothing. `color`: ANSI colours.
pub fn diff(before: &Snapshot, after: &Entry, color: bool) -> Vec<String> {
    let p = Paint { on: color };
    let now = Snapshot::of(after);
    let mut out = Vec::new();
    for (what, a, b) in [
        ("labels", &before.labels, &now.labels),
        ("extracted", &before.extracted, &now.extracted),
        ("structured metadata", &before.metadata, &now.metadata),
    ] {
        let mut parts = Vec::new();
        for (k, v) in b {
            match a.iter().find(|(ka, _)| ka == k) {
                None => parts.push(p.add(&format!("{k}={v:?}"))),
                Some((_, va)) if va != v => {
                    parts.push(p.chg(&format!("{k}: {va:?} -> {v:?}")));
                }
                _ => {}
            }
        }
        for (k, v) in a {
            if !b.iter().any(|(kb, _)| kb == k) {
                parts.push(p.del(&format!("{k}={v:?}")));
            }
        }
        if !parts.is_empty() {
            out.push(format!("  {what}: {}", parts.join(" ")));
        }
    }
    if before.timestamp != now.timestamp {
        let (mut a, mut b) = (String::new(), String::new());
        before.timestamp.write_rfc3339_nano(&mut a);
        now.timestamp.write_rfc3339_nano(&mut b);
        out.push(format!("  timestamp: {}", p.chg(&format!("{a} -> {b}"))));
    }
    if before.line != now.line {
        out.push(format!("  line: {}", p.del(&format!("{:?}", before.line))));
        out.push(format!("        {}", p.add(&format!("{:?}", now.line))));
    }
    out
}

/// Prints what stage `stage` did to one entry: each output's changes, or
/// that it held or dropped it.
pub fn report(stage: &str, before: &Snapshot, outputs: &[Entry]) {
    let color = std::io::stderr().is_terminal();
    let mut s = String::new();
    if outputs.is_empty() {
        let _ = writeln!(
            s,
            "[inspect: {stage} stage]: held or dropped the entry {:?}",
            before.line
        );
    }
    for e in outputs {
        let d = diff(before, e, color);
        if d.is_empty() {
            continue;
        }
        let _ = writeln!(s, "[inspect: {stage} stage]:");
        for l in d {
            let _ = writeln!(s, "{l}");
        }
    }
    if !s.is_empty() {
        eprint!("{s}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ack::Ack;
    use crate::labels::LabelSet;
    use crate::pipeline::Value;

    #[test]
    fn diff_names_every_change() {
        let mut e = Entry::new(
            LabelSet::new([("job", "a"), ("gone", "x")]),
            Timestamp(0),
            "old".into(),
            Ack::none(),
        );
        let before = Snapshot::of(&e);
        e.labels = LabelSet::new([("job", "b"), ("level", "info")]);
        e.extracted.insert("msg", Value::from("hi"));
        e.timestamp = Timestamp(1_000_000_000);
        e.line = "new".into();
        let d = diff(&before, &e, false).join("\n");
        assert!(d.contains("+level=\"info\""), "{d}");
        assert!(d.contains("job: \"a\" -> \"b\""), "{d}");
        assert!(d.contains("-gone=\"x\""), "{d}");
        assert!(d.contains("extracted: +msg="), "{d}");
        assert!(
            d.contains("1970-01-01T00:00:00Z -> 1970-01-01T00:00:01Z"),
            "{d}"
        );
        assert!(d.contains("-\"old\"") && d.contains("+\"new\""), "{d}");
        assert!(diff(&Snapshot::of(&e), &e, false).is_empty());
    }
}
