//! Promtail's `journal` scrape config (`scrapeconfig.JournalTargetConfig`),
//! typed, for the journal source (`source::journal`) to be wired to.
//!
//! Owns: the keys and defaults — `json` (false), `max_age` (7h; Promtail
//! parses it with Go's `time.ParseDuration`, the `d`/`w`/`y` units of
//! [`super::duration`] are accepted on top), `path` (journal directory or
//! file; none = the local journal), `matches` (space-separated
//! `FIELD=value`), `labels` — and [`JournalConfig::check`], Promtail's own
//! start-up errors for them.
//!
//! `ScrapeConfig::journal` is an `Option<JournalConfig>`; `validate.rs`
//! calls [`JournalConfig::check`] and names the key
//! (`scrape_configs[i].journal.<key>`).
//!
//! Must never: accept a key Promtail does not have, or a match journalctl
//! would read as something else.

use super::duration;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Promtail's default `max_age`.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(7 * 3600);

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct JournalConfig {
    /// Ship the whole entry as JSON instead of `MESSAGE`.
    pub json: bool,
    /// How far back to start when there is no (recent enough) cursor.
    #[serde(with = "duration")]
    pub max_age: Duration,
    /// The journal directory (or one journal file); `None` = local journal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// Space-separated `FIELD=value` journal matches.
    pub matches: String,
    /// Labels added to every entry (before `relabel_configs`).
    #[serde(deserialize_with = "super::nullable")]
    pub labels: BTreeMap<String, String>,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            json: false,
            max_age: DEFAULT_MAX_AGE,
            path: None,
            matches: String::new(),
            labels: BTreeMap::new(),
        }
    }
}

impl JournalConfig {
    /// The matches, one per argument: `matches` split on whitespace (Go's
    /// `strings.Fields`), each exactly `FIELD=value` with one `=` as
    /// Promtail requires, and `FIELD` a journal field name (upper-case
    /// letters, digits, `_`; not starting with a digit) so journalctl can
    /// only read it as a match.
    pub fn match_args(&self) -> Result<Vec<String>, String> {
        self.matches
            .split_whitespace()
            .map(|m| {
                let bad = |why: &str| {
                    format!("journal.matches: {m:?} {why} (want FIELD=value, e.g. _SYSTEMD_UNIT=kubelet.service)")
                };
                let mut parts = m.split('=');
                let (Some(field), Some(_value), None) = (parts.next(), parts.next(), parts.next())
                else {
                    return Err(bad("must contain exactly one '='"));
                };
                let ok = field
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
                    && field.bytes().next().is_some_and(|b| !b.is_ascii_digit());
                if !ok {
                    return Err(bad("has no valid journal field name (A-Z, 0-9, _)"));
                }
                Ok(m.to_string())
            })
            .collect()
    }

    /// Promtail's start-up checks: the matches parse and the labels are
    /// valid label names.
    pub fn check(&self) -> Result<(), String> {
        self.match_args()?;
        if let Some(k) = self
            .labels
            .keys()
            .find(|k| !super::validate::is_valid_label_name(k))
        {
            return Err(format!("journal.labels: {k:?} is not a valid label name"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(y: &str) -> Result<JournalConfig, String> {
        serde_yaml_ng::from_str(y).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_promtails() {
        let c = parse("{}").unwrap();
        assert_eq!(c, JournalConfig::default());
        assert!(!c.json);
        assert_eq!(c.max_age, Duration::from_secs(7 * 3600));
        assert_eq!(c.path, None);
        assert!(c.match_args().unwrap().is_empty());
    }

    #[test]
    fn every_key() {
        let c = parse(
            "json: true\nmax_age: 12h\npath: /var/log/journal\n\
             matches: '_SYSTEMD_UNIT=kubelet.service  _SYSTEMD_UNIT=containerd.service'\n\
             labels: {job: systemd-journal}\n",
        )
        .unwrap();
        assert!(c.json);
        assert_eq!(c.max_age, Duration::from_secs(12 * 3600));
        assert_eq!(
            c.path.as_deref(),
            Some(std::path::Path::new("/var/log/journal"))
        );
        assert_eq!(
            c.match_args().unwrap(),
            [
                "_SYSTEMD_UNIT=kubelet.service",
                "_SYSTEMD_UNIT=containerd.service"
            ]
        );
        assert_eq!(c.labels["job"], "systemd-journal");
        c.check().unwrap();
    }

    #[test]
    fn unknown_key_and_bad_duration_are_errors() {
        assert!(parse("format: json").unwrap_err().contains("format"));
        assert!(parse("max_age: 7 hours").is_err());
        assert!(parse("labels: null").unwrap().labels.is_empty());
    }

    #[test]
    fn bad_matches_are_errors() {
        for m in [
            "kubelet.service",
            "A=b=c",
            "=x",
            "-u=x",
            "_systemd_unit=x",
            "1X=y",
            "+",
        ] {
            let c = JournalConfig {
                matches: m.to_string(),
                ..Default::default()
            };
            let e = c.check().unwrap_err();
            assert!(e.contains(m) && e.contains("FIELD=value"), "{m}: {e}");
        }
        // An empty value is a valid match (the field is present and empty).
        let c = JournalConfig {
            matches: "MESSAGE_ID=".into(),
            ..Default::default()
        };
        assert_eq!(c.match_args().unwrap(), ["MESSAGE_ID="]);
    }

    #[test]
    fn bad_label_name_is_an_error() {
        let c = parse("labels: {'bad-name': x}").unwrap();
        assert!(c.check().unwrap_err().contains("bad-name"));
    }
}
