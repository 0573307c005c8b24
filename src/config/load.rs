//! Reading a config file: optional `-config.expand-env` substitution, YAML
//! parsing into [`Config`], and folding Promtail's deprecated `client:` block
//! into `clients`.
//!
//! Errors are [`ConfigError`]s that print like a compiler's:
//! `promtail.yaml:12:5: clients[0]: unknown field `batch_size`, expected one of …`
//! — file, line and column (when known), the key path, then what is wrong.
//! Line numbers count in the text after substitution, which is the file's
//! own numbering unless a substituted value contains a newline.
//!
//! Known gaps: YAML merge keys (`<<: *anchor`) are not supported (an unknown
//! key `<<`); a null scalar (`batchwait:` with no value) is an error for
//! plain-valued keys, while for sections and lists it means "defaults".
//!
//! Must never: panic on any input, or accept a file with an unknown key.

use super::flags::Flags;
use super::{envsubst, Config};
use std::fmt;
use std::path::Path;

/// A config problem, located as precisely as known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The config file as named on the command line, or `command line` for
    /// a bad flag.
    pub file: String,
    /// 1-based line and column, when the problem has a place in the text.
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Dotted key path (`clients[1].tenant_id`), empty for the whole file.
    pub key: String,
    pub message: String,
}

impl ConfigError {
    /// An error about a key, without a line (validation after parsing).
    pub fn at_key(file: &str, key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_owned(),
            line: None,
            column: None,
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        f.write_str(": ")?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Reads and parses a config file (no validation: see [`Config::validate`]).
pub fn load_file(path: &Path, expand_env: bool) -> Result<Config, ConfigError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path)
        .map_err(|e| ConfigError::at_key(&name, "", format!("cannot read config file: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let (line, column) = line_col(
            &String::from_utf8_lossy(e.as_bytes()),
            e.utf8_error().valid_up_to(),
        );
        ConfigError {
            file: name.clone(),
            line: Some(line),
            column: Some(column),
            key: String::new(),
            message: "the file is not valid UTF-8".into(),
        }
    })?;
    load_str(&text, &name, expand_env)
}

/// Parses config text; `file` names it in errors. With `expand_env`,
/// `${VAR}` references are substituted first (see [`envsubst`]).
pub fn load_str(text: &str, file: &str, expand_env: bool) -> Result<Config, ConfigError> {
    let expanded;
    let text = if expand_env {
        expanded = envsubst::expand_env(text).map_err(|e| {
            let (line, column) = line_col(text, e.offset);
            ConfigError {
                file: file.to_owned(),
                line: Some(line),
                column: Some(column),
                key: String::new(),
                message: format!("-config.expand-env: {}", e.message),
            }
        })?;
        expanded.as_str()
    } else {
        text
    };
    let parsed: Option<Config> = serde_yaml_ng::from_str(text).map_err(|e| yaml_error(file, &e))?;
    let mut cfg = parsed.unwrap_or_default();
    cfg.file_name = file.to_owned();
    keep_stages_as_written(&mut cfg, text);
    if let Some(single) = cfg.client.take() {
        cfg.clients.push(single);
        cfg.single_client = Some(cfg.clients.len() - 1);
    }
    Ok(cfg)
}

/// Records each scrape config's `pipeline_stages` as written, for
/// `-print-config-*` (see [`super::ScrapeConfig::pipeline_stages_yaml`]).
/// `text` has parsed into a [`Config`] already, so it is valid YAML.
fn keep_stages_as_written(cfg: &mut Config, text: &str) {
    let Ok(doc) = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text) else {
        return;
    };
    let Some(jobs) = doc.get("scrape_configs").and_then(|v| v.as_sequence()) else {
        return;
    };
    for (sc, raw) in cfg.scrape_configs.iter_mut().zip(jobs) {
        if let Some(stages) = raw.get("pipeline_stages").and_then(|v| v.as_sequence()) {
            sc.pipeline_stages_yaml = stages.clone();
        }
    }
}

/// Everything the agent does with the config at start-up, in Promtail's
/// order: load `-config.file` (with `-config.expand-env`), apply the flag
/// overrides, validate (`-dry-run` allows no clients). This is the whole of
/// `-check-syntax`.
pub fn load_with_flags(flags: &Flags) -> Result<Config, ConfigError> {
    let Some(path) = &flags.config_file else {
        return Err(ConfigError::at_key(
            "command line",
            "-config.file",
            "is required",
        ));
    };
    let mut cfg = load_file(path, flags.config_expand_env)?;
    flags
        .apply(&mut cfg)
        .map_err(|e| ConfigError::at_key("command line", "", e))?;
    cfg.validate(flags.dry_run)?;
    Ok(cfg)
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut off = offset.min(text.len());
    while !text.is_char_boundary(off) {
        off -= 1;
    }
    let before = &text[..off];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Splits serde_yaml_ng's `path: message at line L column C` into parts.
fn yaml_error(file: &str, e: &serde_yaml_ng::Error) -> ConfigError {
    let full = e.to_string();
    let loc = e.location().map(|l| (l.line(), l.column()));
    let mut msg = full.as_str().to_owned();
    if let Some((l, c)) = loc {
        let suffix = format!(" at line {l} column {c}");
        if let Some(i) = msg.find(&suffix) {
            msg.replace_range(i..i + suffix.len(), "");
        }
    }
    let (key, message) = match msg.split_once(": ") {
        Some((k, m)) if is_key_path(k) => (k.to_owned(), m.to_owned()),
        _ => (String::new(), msg),
    };
    ConfigError {
        file: file.to_owned(),
        line: loc.map(|l| l.0),
        column: loc.map(|l| l.1),
        key,
        message,
    }
}

fn is_key_path(s: &str) -> bool {
    !s.is_empty() && !s.contains([' ', '`', '"', '\''])
}

#[cfg(test)]
mod tests;
