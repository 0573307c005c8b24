//! The `decolorize` stage: Promtail's `- decolorize: {}`.
//!
//! Owns: the stage and the ANSI-sequence pattern.
//!
//! What it does, as Promtail v3.6 does it (Loki's `Decolorizer`, whose
//! pattern comes from acarl005/stripansi): every ANSI escape sequence is
//! removed from the line — an introducer (ESC, or the one-character CSI
//! U+009B), optional `[`, `]`, `(`, `)`, `#`, `;`, `?` characters, then
//! either an OSC-style body ended by BEL (`ESC ] 0;title BEL`) or numeric
//! parameters (up to 4 digits each, `;`-separated) and a final character
//! from `0-9A-PRZcf-ntqry=><~` (colours `ESC[1;31m`, cursor moves
//! `ESC[2K`, …). Anything else, including an ESC that starts no such
//! sequence, stays. The stage has no options (`- decolorize:` or
//! `- decolorize: {}`).
//!
//! A line without an ESC or a U+009B costs one `memchr2` and no allocation.
//!
//! Must never: touch the labels, the timestamp or the extracted map, or
//! drop an entry.

use super::BuildCtx;
use crate::entry::Entry;
use crate::pipeline::Stage;
use serde::Deserialize;
use std::borrow::Cow;

/// Whether the stage runs.
pub const HONOURED: bool = true;

/// `decolorize:` takes no options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {}

/// Builds the stage (with or without `{}`).
pub fn build(_c: Option<&Config>, _ctx: &BuildCtx) -> Result<Option<Box<dyn Stage>>, String> {
    Ok(Some(Box::new(DecolorizeStage::new()?)))
}

/// Loki's pattern, in Rust syntax (`\d` written `[0-9]`, as Go's is ASCII).
const ANSI_PATTERN: &str = concat!(
    r"[\x{1B}\x{9B}][\[\]()#;?]*",
    r"(?:(?:(?:[a-zA-Z0-9]*(?:;[a-zA-Z0-9]*)*)?\x{07})",
    r"|(?:(?:[0-9]{1,4}(?:;[0-9]{0,4})*)?[0-9A-PRZcf-ntqry=><\~]))",
);

/// The stage. See the module docs.
pub struct DecolorizeStage {
    re: ::regex::Regex,
}

impl DecolorizeStage {
    pub fn new() -> Result<Self, String> {
        let re = ::regex::Regex::new(ANSI_PATTERN).map_err(|e| e.to_string())?;
        Ok(DecolorizeStage { re })
    }

    /// `line` without its escape sequences (borrowed when it has none).
    pub fn strip<'a>(&self, line: &'a str) -> Cow<'a, str> {
        // ESC, or the first byte of U+009B's UTF-8 form (0xC2 0x9B).
        if memchr::memchr2(0x1B, 0xC2, line.as_bytes()).is_none() {
            return Cow::Borrowed(line);
        }
        self.re.replace_all(line, "")
    }
}

impl Stage for DecolorizeStage {
    fn name(&self) -> &'static str {
        "decolorize"
    }

    fn uses_extracted(&self) -> bool {
        false
    }

    fn edits_only(&self) -> bool {
        true
    }

    fn edit(&mut self, entry: &mut Entry) {
        if let Cow::Owned(s) = self.strip(&entry.line) {
            entry.line = s.into();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::LabelSet;
    use crate::metrics::Metrics;
    use crate::pipeline::stages::test_harness::Harness;
    use std::sync::Arc;

    fn strip(s: &str) -> String {
        DecolorizeStage::new().unwrap().strip(s).into_owned()
    }

    /// Expectations from the stripansi pattern Loki uses (each sequence
    /// read by hand against it).
    #[test]
    fn strips_what_lokis_decolorizer_strips() {
        for (input, want) in [
            ("plain line", "plain line"),
            ("", ""),
            ("\x1b[31mred\x1b[0m", "red"),
            ("\x1b[1;31;42mbold\x1b[m text", "bold text"),
            ("\x1b[38;5;196mx\x1b[39m", "x"),
            ("\x1b[38;2;255;0;0mtrue\x1b[0m", "true"),
            ("a\x1b[2Kb\x1b[1Gc", "abc"),
            ("\x1b[?25lhidden\x1b[?25h", "hidden"),
            ("\x1b]0;title\x07after", "after"),
            // stripansi's OSC body has no spaces: only `ESC ] 0` goes.
            ("\x1b]0;window title\x07after", ";window title\x07after"),
            ("\u{9b}31mcsi\u{9b}0m", "csi"),
            ("\x1b(Bcharset", "charset"),
            ("\x1b#8x", "x"),
            ("level=\x1b[32minfo\x1b[0m msg=ok", "level=info msg=ok"),
            // Not sequences: a lone ESC, ESC followed by a non-final char.
            ("lone \x1b esc", "lone \x1b esc"),
            ("\x1b[", "\x1b["),
            // Five digits: the first four with the fifth as final char.
            ("\x1b[123456m", "6m"),
            // Non-ASCII text around sequences is kept.
            ("é\x1b[1m°ü\x1b[0m✓", "é°ü✓"),
            ("© 2024 «x»", "© 2024 «x»"),
        ] {
            assert_eq!(strip(input), want, "{input:?}");
        }
    }

    #[test]
    fn the_stage_rewrites_only_the_line() {
        let mut h = Harness::of(
            DecolorizeStage::new().unwrap(),
            LabelSet::new([("job", "x")]),
        );
        h.feed("\x1b[33mwarn\x1b[0m");
        h.feed("clean");
        assert_eq!(h.out[0].line, "warn");
        assert_eq!(h.out[1].line, "clean");
        assert_eq!(h.out[0].labels, h.labels);
        assert_eq!(h.out[0].timestamp.0, 7);
        h.ack_all();
        assert_eq!(h.committed(), h.offset);
    }

    #[test]
    fn config_forms() {
        let v: Vec<super::super::StageConfig> =
            serde_yaml_ng::from_str("- decolorize:\n- decolorize: {}\n").unwrap();
        assert!(v.iter().all(|s| s.unhonoured_name().is_none()));
        let p = super::super::build(&v, Arc::new(Metrics::new())).unwrap();
        assert_eq!(p.stage_names(), ["decolorize", "decolorize"]);
        assert!(serde_yaml_ng::from_str::<Config>("{a: 1}").is_err());
    }

    proptest::proptest! {
        /// Text without ESC or U+009B is never changed, and colour codes
        /// around text are removed, leaving the text.
        #[test]
        fn only_sequences_are_removed(
            any in "[^\\x1b\\x{9b}]{0,40}",
            s in "[a-zA-Z0-9 .,:;=é✓-]{0,40}",
            t in "(\\x1b\\[([0-9]{1,3}(;[0-9]{1,3}){0,2})?[mK])?",
        ) {
            let st = DecolorizeStage::new().unwrap();
            proptest::prop_assert_eq!(st.strip(&any).into_owned(), any);
            let mixed = format!("{t}{s}{t}");
            proptest::prop_assert_eq!(st.strip(&mixed).into_owned(), s);
        }
    }
}
