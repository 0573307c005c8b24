//! Promtail's command-line flags, parsed the way Go's `flag` package does,
//! and their overrides of the config file.
//!
//! Syntax (Go `flag`): `-name=value`, `-name value`, `--name=value`,
//! `--name value`; boolean flags are `-name` or `-name=true|false` (also
//! 1/0/t/f/T/F/TRUE/FALSE/True/False) and never take the next argument. `--`
//! ends the flags. A repeated flag: the last one wins (labels of repeated
//! `-client.external-labels` are merged). Unknown flags and positional
//! arguments are errors naming them. `-h`/`-help` ask for [`Flags::usage`].
//!
//! Precedence, as in Promtail: defaults < config file < flags. The client
//! flags describe Promtail's single client: `-client.url` sets the `url` of
//! the deprecated `client:` block if the file has one, else selects the
//! `clients` entry with that exact url, else adds a client with that url.
//! `-client.tenant-id`, `-client.batch-wait` and `-client.batch-size-bytes`
//! apply to that client (an error if there is none), and
//! `-client.external-labels` are added to every client, replacing a
//! client's own label of the same name.
//!
//! Must never: accept a flag it does not act on without saying so, or exit
//! the process (the caller prints usage and decides).

use super::duration;
use super::validate::is_valid_label_name;
use super::{ClientConfig, Config, LogFormat, LogLevel};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// The parsed command line. `None` = the flag was not given.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Flags {
    pub config_file: Option<PathBuf>,
    pub config_expand_env: bool,
    pub dry_run: bool,
    pub check_syntax: bool,
    /// Print each stage's changes per entry (`-inspect`); recorded for the
    /// pipeline, not acted on here.
    pub inspect: bool,
    pub print_config_stderr: bool,
    pub print_config_stdout: bool,
    pub log_level: Option<LogLevel>,
    pub log_format: Option<LogFormat>,
    pub client_url: Option<String>,
    pub client_tenant_id: Option<String>,
    pub client_batch_wait: Option<Duration>,
    pub client_batch_size_bytes: Option<usize>,
    pub client_external_labels: BTreeMap<String, String>,
    pub server_http_listen_port: Option<u16>,
    pub positions_file: Option<PathBuf>,
    pub version: bool,
    pub help: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Bool,
    Value,
}

/// name, kind, value placeholder, help.
const FLAGS: &[(&str, Kind, &str, &str)] = &[
    ("config.file", Kind::Value, "path", "Configuration file to load (required)."),
    ("config.expand-env", Kind::Bool, "", "Substitute ${VAR} and ${VAR:-default} references to environment variables in the configuration file (drone/envsubst syntax)."),
    ("dry-run", Kind::Bool, "", "Print log entries to stdout instead of pushing them; positions are read but never written."),
    ("check-syntax", Kind::Bool, "", "Load and validate the configuration file, then exit (0 if valid)."),
    ("inspect", Kind::Bool, "", "Show what each pipeline stage changes (with -dry-run)."),
    ("print-config-stderr", Kind::Bool, "", "Print the effective configuration to stderr at start-up, as YAML in Promtail's keys (secrets masked)."),
    ("print-config-stdout", Kind::Bool, "", "Print the effective configuration to stdout at start-up, as YAML in Promtail's keys (secrets masked)."),
    ("log.level", Kind::Value, "level", "Only log messages at or above this level: debug, info, warn, error (default info)."),
    ("log.format", Kind::Value, "format", "Log format: logfmt or json (default logfmt)."),
    ("client.url", Kind::Value, "url", "Loki push URL, e.g. http://loki:3100/loki/api/v1/push (adds a client, or sets the url of the config's `client:` block)."),
    ("client.tenant-id", Kind::Value, "id", "Tenant ID of the -client.url client."),
    ("client.batch-wait", Kind::Value, "duration", "Maximum time the -client.url client waits before sending a batch (e.g. 1s)."),
    ("client.batch-size-bytes", Kind::Value, "bytes", "Maximum batch size of the -client.url client, in bytes."),
    ("client.external-labels", Kind::Value, "k=v,...", "Labels added to every line of every client, e.g. cluster=prod,region=eu."),
    ("server.http-listen-port", Kind::Value, "port", "HTTP port for /metrics and /ready (default 9080)."),
    ("positions.file", Kind::Value, "path", "Positions file (overrides positions.filename)."),
    ("version", Kind::Bool, "", "Print the version and exit."),
    ("help", Kind::Bool, "", "Print this help and exit."),
    ("h", Kind::Bool, "", "Same as -help."),
];

fn parse_bool(name: &str, v: &str) -> Result<bool, String> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!(
            "invalid boolean value {v:?} for -{name}: parse error"
        )),
    }
}

/// `k=v,k2=v2` as `-client.external-labels` takes it.
fn parse_labels(s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for pair in s.split(',').filter(|p| !p.trim().is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("{pair:?} is not name=value"))?;
        let k = k.trim();
        if !is_valid_label_name(k) {
            return Err(format!(
                "{k:?} is not a valid label name: it must match [a-zA-Z_][a-zA-Z0-9_]*"
            ));
        }
        out.insert(k.to_owned(), v.trim().to_owned());
    }
    Ok(out)
}

impl Flags {
    /// Parses the arguments after the program name.
    pub fn parse_from<I: IntoIterator<Item = String>>(args: I) -> Result<Flags, String> {
        let mut f = Flags::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            if arg == "--" {
                if let Some(extra) = args.next() {
                    return Err(format!("unexpected argument {extra:?}"));
                }
                break;
            }
            let Some(body) = arg.strip_prefix('-').filter(|b| !b.is_empty()) else {
                return Err(format!(
                    "unexpected argument {arg:?} (flags start with -, e.g. -config.file=promtail.yaml)"
                ));
            };
            let body = body.strip_prefix('-').unwrap_or(body);
            if body.is_empty() || body.starts_with(['-', '=']) {
                return Err(format!("bad flag syntax: {arg}"));
            }
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (body, None),
            };
            let Some(&(_, kind, _, _)) = FLAGS.iter().find(|d| d.0 == name) else {
                return Err(format!("flag provided but not defined: -{name}"));
            };
            let value = match (kind, inline) {
                (Kind::Bool, None) => "true".to_owned(),
                (_, Some(v)) => v,
                (Kind::Value, None) => args
                    .next()
                    .ok_or_else(|| format!("flag needs an argument: -{name}"))?,
            };
            f.set(name, &value)?;
        }
        if f.config_file.is_none() && !f.help && !f.version {
            return Err(
                "-config.file is required (e.g. -config.file=/etc/promtail/promtail.yaml)".into(),
            );
        }
        Ok(f)
    }

    fn set(&mut self, name: &str, v: &str) -> Result<(), String> {
        let invalid = |e: String| format!("invalid value {v:?} for flag -{name}: {e}");
        match name {
            "config.file" => {
                if v.is_empty() {
                    return Err(invalid("empty path".into()));
                }
                self.config_file = Some(PathBuf::from(v));
            }
            "config.expand-env" => self.config_expand_env = parse_bool(name, v)?,
            "dry-run" => self.dry_run = parse_bool(name, v)?,
            "check-syntax" => self.check_syntax = parse_bool(name, v)?,
            "inspect" => self.inspect = parse_bool(name, v)?,
            "print-config-stderr" => self.print_config_stderr = parse_bool(name, v)?,
            "print-config-stdout" => self.print_config_stdout = parse_bool(name, v)?,
            "version" => self.version = parse_bool(name, v)?,
            "help" | "h" => self.help = parse_bool(name, v)?,
            "log.level" => self.log_level = Some(LogLevel::parse(v).map_err(invalid)?),
            "log.format" => self.log_format = Some(LogFormat::parse(v).map_err(invalid)?),
            "client.url" => {
                // The URL may carry a password: quote it masked.
                let invalid = |e: String| {
                    format!(
                        "invalid value {:?} for flag -{name}: {e}",
                        super::secret::redact_url(v)
                    )
                };
                let u = reqwest::Url::parse(v).map_err(|e| invalid(e.to_string()))?;
                if !matches!(u.scheme(), "http" | "https") {
                    return Err(invalid("the scheme must be http or https".into()));
                }
                self.client_url = Some(v.to_owned());
            }
            "client.tenant-id" => self.client_tenant_id = Some(v.to_owned()),
            "client.batch-wait" => {
                self.client_batch_wait = Some(duration::parse(v).map_err(invalid)?)
            }
            "client.batch-size-bytes" => {
                self.client_batch_size_bytes = Some(duration::parse_bytes(v).map_err(invalid)?)
            }
            "client.external-labels" => {
                let labels = parse_labels(v).map_err(invalid)?;
                self.client_external_labels.extend(labels);
            }
            "server.http-listen-port" => {
                self.server_http_listen_port = Some(
                    v.parse()
                        .map_err(|_| invalid("not a port number (0-65535)".into()))?,
                )
            }
            "positions.file" => self.positions_file = Some(PathBuf::from(v)),
            _ => return Err(format!("flag provided but not defined: -{name}")),
        }
        Ok(())
    }

    /// The `-help` text.
    pub fn usage() -> String {
        let mut out = String::from("Usage of tailtrace (Promtail-compatible flags):\n");
        for (name, kind, placeholder, help) in FLAGS {
            if *name == "h" {
                continue;
            }
            match kind {
                Kind::Bool => out.push_str(&format!("  -{name}\n")),
                Kind::Value => out.push_str(&format!("  -{name} {placeholder}\n")),
            }
            out.push_str(&format!("    \t{help}\n"));
        }
        out
    }

    /// Applies the flag overrides to a loaded config (see the module comment
    /// for the client rules). Call [`Config::validate`] afterwards.
    pub fn apply(&self, cfg: &mut Config) -> Result<(), String> {
        if let Some(l) = self.log_level {
            cfg.server.log_level = Some(l);
        }
        if let Some(f) = self.log_format {
            cfg.server.log_format = Some(f);
        }
        if let Some(p) = self.server_http_listen_port {
            cfg.server.http_listen_port = p;
        }
        if let Some(p) = &self.positions_file {
            cfg.positions.filename = p.clone();
        }

        let single = cfg.single_client.filter(|&i| i < cfg.clients.len());
        let target = match &self.client_url {
            None => single,
            Some(url) => Some(if let Some(i) = single {
                cfg.clients[i].url = url.as_str().into();
                i
            } else if let Some(i) = cfg.clients.iter().position(|c| c.url.expose() == url) {
                i
            } else {
                cfg.clients.push(ClientConfig {
                    url: url.as_str().into(),
                    ..ClientConfig::default()
                });
                cfg.single_client = Some(cfg.clients.len() - 1);
                cfg.clients.len() - 1
            }),
        };
        let per_client = [
            ("-client.tenant-id", self.client_tenant_id.is_some()),
            ("-client.batch-wait", self.client_batch_wait.is_some()),
            (
                "-client.batch-size-bytes",
                self.client_batch_size_bytes.is_some(),
            ),
        ];
        match target.and_then(|i| cfg.clients.get_mut(i)) {
            Some(c) => {
                if let Some(t) = &self.client_tenant_id {
                    c.tenant_id = Some(t.clone());
                }
                if let Some(w) = self.client_batch_wait {
                    c.batchwait = w;
                }
                if let Some(b) = self.client_batch_size_bytes {
                    c.batchsize = b;
                }
            }
            None => {
                if let Some((flag, _)) = per_client.iter().find(|p| p.1) {
                    return Err(format!(
                        "{flag} applies to the -client.url client: pass -client.url, or use a `client:` block in the config file"
                    ));
                }
            }
        }
        for c in &mut cfg.clients {
            for (k, v) in &self.client_external_labels {
                c.external_labels.insert(k.clone(), v.clone());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
