//! Decoding one line of docker's `json-file` log format.
//!
//! Owns: [`decode`] (one line → [`DockerLine`]).
//!
//! Format: `{"log":"text\n","stream":"stdout","time":"2016-10-20T18:39:20.57606443Z"}`
//! with an optional `"attrs"` object. Docker splits lines longer than 16 KiB:
//! only the last piece's `log` ends in `\n` (joining is the `docker` stage's
//! job, not the decoder's).
//!
//! Design: serde_json into a borrowed struct; `log` is a `Cow<str>` that
//! borrows when the text has no escapes (most text ends in an escaped `\n`,
//! so usually it is owned — one allocation per line). Unknown keys are
//! ignored, as Promtail's `json` stage ignores them. The timestamp goes
//! through [`super::cri::parse_rfc3339`].
//!
//! Strictness: `log`, `stream` (`stdout`/`stderr`) and a valid `time` are all
//! required; anything else is a [`DockerError`], and the stage passes such a
//! line through unchanged (as Promtail does for a line that is not JSON).
//!
//! Must never: panic on any input, or do I/O.

use super::cri::{parse_rfc3339, Stream};
use crate::entry::Timestamp;
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;

/// One decoded json-file line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DockerLine<'a> {
    /// The unescaped `log` text, trailing `\n` included when present.
    pub log: Cow<'a, str>,
    pub stream: Stream,
    pub timestamp: Timestamp,
}

/// Why a line is not a docker json-file line.
#[derive(Debug)]
pub enum DockerError {
    /// Not JSON, or a required field is missing or of the wrong type.
    Json(serde_json::Error),
    /// `stream` is neither `stdout` nor `stderr`.
    BadStream,
    /// `time` is not an RFC 3339 timestamp in range.
    BadTimestamp,
}

impl fmt::Display for DockerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DockerError::Json(e) => write!(f, "not a docker json-file line: {e}"),
            DockerError::BadStream => {
                f.write_str("docker line: stream is neither stdout nor stderr")
            }
            DockerError::BadTimestamp => f.write_str("docker line: invalid RFC 3339 time"),
        }
    }
}

impl std::error::Error for DockerError {}

#[derive(Deserialize)]
struct Raw<'a> {
    #[serde(borrow)]
    log: Cow<'a, str>,
    #[serde(borrow)]
    stream: Cow<'a, str>,
    #[serde(borrow)]
    time: Cow<'a, str>,
}

/// Decodes one json-file line (without the file's trailing `\n`).
pub fn decode(line: &[u8]) -> Result<DockerLine<'_>, DockerError> {
    let raw: Raw<'_> = serde_json::from_slice(line).map_err(DockerError::Json)?;
    let stream = Stream::from_bytes(raw.stream.as_bytes()).ok_or(DockerError::BadStream)?;
    let timestamp = parse_rfc3339(raw.time.as_bytes()).ok_or(DockerError::BadTimestamp)?;
    Ok(DockerLine {
        log: raw.log,
        stream,
        timestamp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decodes_the_documented_example() {
        let l =
            decode(br#"{"log":"text\n","stream":"stdout","time":"2016-10-20T18:39:20.57606443Z"}"#)
                .unwrap();
        assert_eq!(l.log, "text\n");
        assert_eq!(l.stream, Stream::Stdout);
        assert_eq!(l.timestamp, Timestamp(1_476_988_760_576_064_430));
    }

    #[test]
    fn unescapes_and_borrows_when_possible() {
        let l = decode(
            br#"{"log":"a \"q\" \u00e9 \t\\","stream":"stderr","time":"2016-10-20T18:39:20Z","attrs":{"k":"v"}}"#,
        )
        .unwrap();
        assert_eq!(l.log, "a \"q\" é \t\\");
        assert_eq!(l.stream, Stream::Stderr);
        let l = decode(br#"{"log":"plain piece","stream":"stdout","time":"2016-10-20T18:39:20Z"}"#)
            .unwrap();
        assert!(matches!(l.log, Cow::Borrowed("plain piece")));
    }

    #[test]
    fn malformed_lines_are_errors() {
        assert!(matches!(decode(b"plain text"), Err(DockerError::Json(_))));
        assert!(matches!(
            decode(b"{\"log\":\"x\"}"),
            Err(DockerError::Json(_))
        ));
        assert!(matches!(
            decode(br#"{"log":1,"stream":"stdout","time":"2016-10-20T18:39:20Z"}"#),
            Err(DockerError::Json(_))
        ));
        assert!(matches!(
            decode(br#"{"log":"x","stream":"stdin","time":"2016-10-20T18:39:20Z"}"#),
            Err(DockerError::BadStream)
        ));
        assert!(matches!(
            decode(br#"{"log":"x","stream":"stdout","time":"yesterday"}"#),
            Err(DockerError::BadTimestamp)
        ));
        assert!(matches!(
            decode(br#"{"log":"x","stream":"stdout","time":"2016-10-20T18:39:20Z"} trailing"#),
            Err(DockerError::Json(_))
        ));
    }

    /// Found by fuzzing: a lone surrogate escape is refused in `log` but
    /// not in a field the decoder ignores (JSON's grammar allows it there).
    #[test]
    fn lone_surrogates_only_matter_in_the_log() {
        assert!(
            decode(br#"{"log":"\ud800","stream":"stdout","time":"2016-10-20T18:39:20Z"}"#).is_err()
        );
        let l = decode(br#"{"log":"x","stream":"stdout","attrs":{"k":"\ud800"},"time":"2016-10-20T18:39:20Z"}"#);
        assert_eq!(l.unwrap().log, "x");
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn never_panics_near_valid(
            log in "([a-z ]|\\\\[nt\"\\\\/]|\\\\u[0-9a-fA-F]{0,4}|\\\\)*",
            stream in "stdout|stderr|x",
            time in "[0-9T:.Z+-]{0,40}",
        ) {
            let line = format!(r#"{{"log":"{log}","stream":"{stream}","time":"{time}"}}"#);
            let _ = decode(line.as_bytes());
        }
    }
}
