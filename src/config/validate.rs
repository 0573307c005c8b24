//! Checks on a parsed [`Config`] that YAML types cannot express: what must be
//! present, what must be well-formed, what is mutually exclusive.
//!
//! Each error names the file and the key path as the user wrote it
//! (`clients[1].tenant_id`, or `client.url` for the deprecated block). The
//! first problem found is reported. Only things that would make the agent
//! misbehave are refused; settings Promtail accepts are never refused for
//! style.
//!
//! Must never: modify the config, or read files it names (secrets are read
//! by the client that uses them, so a missing file is reported there).

use super::load::ConfigError;
use super::Config;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Prometheus label names: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_valid_label_name(name: &str) -> bool {
    let mut b = name.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// Loki's tenant ID rules: at most 150 bytes of `0-9 a-z A-Z ! - _ . * ' ( )`,
/// and not `.` or `..`. (`:` is reserved; `|` separates tenants in queries
/// only, so a push with it is refused by Loki.)
pub fn check_tenant_id(id: &str) -> Result<(), String> {
    if id.len() > 150 {
        return Err(format!(
            "{id:?} is {} bytes long; Loki allows at most 150",
            id.len()
        ));
    }
    if id == "." || id == ".." {
        return Err(format!("{id:?} is not allowed as a tenant ID"));
    }
    if let Some(c) = id
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || "!-_.*'()".contains(c)))
    {
        return Err(format!(
            "{id:?} contains {c:?}; Loki tenant IDs may only contain 0-9 a-z A-Z ! - _ . * ' ( )"
        ));
    }
    Ok(())
}

/// Scrape-config keys that make it something other than a file scrape
/// config (their static_configs need no `__path__`).
fn is_file_scrape(sc: &super::ScrapeConfig) -> bool {
    [
        sc.journal.is_some(),
        sc.syslog.is_some(),
        sc.loki_push_api.is_some(),
        sc.windows_events.is_some(),
        sc.gelf.is_some(),
        sc.cloudflare.is_some(),
        sc.kafka.is_some(),
        sc.gcplog.is_some(),
        sc.azure_event_hubs.is_some(),
        sc.heroku_drain.is_some(),
    ]
    .iter()
    .all(|present| !present)
}

/// Errors quote the URL with its password masked.
fn check_http_url(url: &str, schemes: &[&str]) -> Result<(), String> {
    if url.is_empty() {
        return Err("is required".into());
    }
    let s = super::secret::redact_url(url);
    let u = reqwest::Url::parse(url).map_err(|e| format!("{s:?} is not a valid URL: {e}"))?;
    if !schemes.contains(&u.scheme()) {
        return Err(format!(
            "{s:?}: scheme must be {}, not {:?}",
            schemes.join(" or "),
            u.scheme()
        ));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(format!("{s:?} has no host"));
    }
    Ok(())
}

fn check_labels(map: &BTreeMap<String, String>) -> Result<(), (String, String)> {
    for name in map.keys() {
        if !is_valid_label_name(name) {
            return Err((
                name.clone(),
                format!("{name:?} is not a valid label name: it must match [a-zA-Z_][a-zA-Z0-9_]*"),
            ));
        }
    }
    Ok(())
}

impl Config {
    /// Checks the whole config. `dry_run` allows having no client (lines are
    /// printed instead of pushed).
    pub fn validate(&self, dry_run: bool) -> Result<(), ConfigError> {
        let err = |key: String, msg: String| Err(ConfigError::at_key(&self.file_name, key, msg));

        if self.clients.is_empty() && !dry_run {
            return err(
                "clients".into(),
                "no client configured: add a `clients:` entry with a `url`, or pass -client.url (or use -dry-run)".into(),
            );
        }
        if self.wal.enabled && !dry_run {
            if self.wal.dir.as_os_str().is_empty() {
                return err(
                    "wal.dir".into(),
                    "required when wal.enabled is true: the directory the spool is kept in".into(),
                );
            }
            if self.wal.max_size < (256 << 10) {
                return err(
                    "wal.max_size".into(),
                    format!("{} bytes is too small: at least 256KiB", self.wal.max_size),
                );
            }
            if self.wal.chunk_wait.is_zero() {
                return err("wal.chunk_wait".into(), "must be greater than 0".into());
            }
        }
        if self.trace_context.enabled {
            let stage = self.trace_context.stage();
            let counters = crate::metrics::CounterF::default();
            if let Err(e) = crate::pipeline::stages::trace::TraceStage::new(&stage, counters) {
                return err("trace_context".into(), e);
            }
        }
        let mut names: HashMap<&str, usize> = HashMap::new();
        for (i, c) in self.clients.iter().enumerate() {
            if let Some(n) = c.name.as_deref().filter(|n| !n.is_empty()) {
                if let Some(j) = names.insert(n, i) {
                    return err(
                        format!("{}.name", self.client_key(i)),
                        format!("{n:?} is also the name of {}", self.client_key(j)),
                    );
                }
            }
        }
        let mut seen: HashMap<(&str, &str), usize> = HashMap::new();
        for (i, c) in self.clients.iter().enumerate() {
            let ck = self.client_key(i);
            if let Err(m) = check_http_url(c.url.expose(), &["http", "https"]) {
                return err(format!("{ck}.url"), m);
            }
            let tenant = c.tenant_id.as_deref().unwrap_or("");
            if !tenant.is_empty() {
                if let Err(m) = check_tenant_id(tenant) {
                    return err(format!("{ck}.tenant_id"), m);
                }
            }
            if let Some(j) = seen.insert((c.url.expose(), tenant), i) {
                return err(
                    ck,
                    format!(
                        "same url and tenant_id as {}: every line would be sent twice",
                        self.client_key(j)
                    ),
                );
            }
            if c.batchsize == 0 {
                return err(format!("{ck}.batchsize"), "must be greater than 0".into());
            }
            if c.batchwait.is_zero() {
                return err(format!("{ck}.batchwait"), "must be greater than 0".into());
            }
            if c.timeout.is_zero() {
                return err(format!("{ck}.timeout"), "must be greater than 0".into());
            }
            if c.backoff_config.max_period < c.backoff_config.min_period {
                return err(
                    format!("{ck}.backoff_config.max_period"),
                    "must not be less than min_period".into(),
                );
            }
            if let Err((name, m)) = check_labels(&c.external_labels) {
                return err(format!("{ck}.external_labels.{name}"), m);
            }
            if let Some(h) = c
                .headers
                .expose()
                .keys()
                .find(|h| h.eq_ignore_ascii_case("X-Scope-OrgID"))
            {
                return err(
                    format!("{ck}.headers.{h}"),
                    "the tenant header cannot be set here; use tenant_id".into(),
                );
            }
            if let Some(ba) = &c.basic_auth {
                if ba.password.is_some() && ba.password_file.is_some() {
                    return err(
                        format!("{ck}.basic_auth"),
                        "at most one of password and password_file may be set".into(),
                    );
                }
            }
            if c.bearer_token.is_some() && c.bearer_token_file.is_some() {
                return err(
                    ck,
                    "at most one of bearer_token and bearer_token_file may be set".into(),
                );
            }
            let auths = [
                ("basic_auth", c.basic_auth.is_some()),
                (
                    "bearer_token",
                    c.bearer_token.is_some() || c.bearer_token_file.is_some(),
                ),
                ("authorization", c.authorization.is_some()),
                ("oauth2", c.oauth2.is_some()),
            ];
            let set: Vec<&str> = auths.iter().filter(|a| a.1).map(|a| a.0).collect();
            if set.len() > 1 {
                return err(
                    ck,
                    format!(
                        "at most one authentication method may be set, found {}",
                        set.join(" and ")
                    ),
                );
            }
            if let Some(p) = c
                .proxy_url
                .as_ref()
                .map(|p| p.expose())
                .filter(|p| !p.is_empty())
            {
                if let Err(m) = check_http_url(p, &["http", "https", "socks5"]) {
                    return err(format!("{ck}.proxy_url"), m);
                }
            }
            if c.tls_config.cert_file.is_some() != c.tls_config.key_file.is_some() {
                return err(
                    format!("{ck}.tls_config"),
                    "cert_file and key_file must be set together".into(),
                );
            }
        }

        if self.positions.filename.as_os_str().is_empty() {
            return err("positions.filename".into(), "is required".into());
        }
        if self.positions.sync_period.is_zero() {
            return err(
                "positions.sync_period".into(),
                "must be greater than 0".into(),
            );
        }
        if self.target_config.sync_period.is_zero() {
            return err(
                "target_config.sync_period".into(),
                "must be greater than 0".into(),
            );
        }

        let mut jobs = HashSet::new();
        for (i, sc) in self.scrape_configs.iter().enumerate() {
            let key = format!("scrape_configs[{i}]");
            if sc.job_name.is_empty() {
                return err(format!("{key}.job_name"), "is required".into());
            }
            if !jobs.insert(sc.job_name.as_str()) {
                return err(
                    format!("{key}.job_name"),
                    format!("{:?} is used by more than one scrape config", sc.job_name),
                );
            }
            if let Some(kp) = &sc.kubernetes_pods {
                let kkey = format!("{key}.kubernetes_pods");
                if !sc.kubernetes_sd_configs.is_empty() || !sc.static_configs.is_empty() {
                    return err(
                        kkey,
                        "a scrape config with kubernetes_pods takes its targets from it alone: move kubernetes_sd_configs and static_configs to another scrape config".into(),
                    );
                }
                if let Err((k, m)) = kp.check() {
                    return err(format!("{kkey}.{k}"), m);
                }
            }
            if let Some(j) = &sc.journal {
                if let Err(e) = j.check() {
                    // `check` says "journal.<key>: <message>".
                    let (k, m) = e.split_once(": ").unwrap_or(("journal", e.as_str()));
                    return err(format!("{key}.{k}"), m.to_string());
                }
            }
            let file_scrape = is_file_scrape(sc);
            for (j, st) in sc.static_configs.iter().enumerate() {
                let skey = format!("{key}.static_configs[{j}]");
                if let Err((name, m)) = check_labels(&st.labels) {
                    return err(format!("{skey}.labels.{name}"), m);
                }
                // Relabeling can build `__path__` (Promtail drops a target
                // that still has none, counted as `no_path`).
                if file_scrape
                    && sc.relabel_configs.is_empty()
                    && st.labels.get("__path__").is_none_or(String::is_empty)
                {
                    return err(
                        format!("{skey}.labels"),
                        format!(
                            "job {:?}: a static config of a file scrape config needs a `__path__` label (the files to tail)",
                            sc.job_name
                        ),
                    );
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_names() {
        for ok in ["a", "_", "__path__", "job", "A9_b"] {
            assert!(is_valid_label_name(ok), "{ok}");
        }
        for bad in ["", "9a", "a-b", "a.b", "ä", "a b"] {
            assert!(!is_valid_label_name(bad), "{bad}");
        }
    }

    #[test]
    fn tenant_ids() {
        for ok in [
            "team-a",
            "a.b",
            "x_y",
            "A*B",
            "(it's)",
            "!",
            &"t".repeat(150),
        ] {
            assert!(check_tenant_id(ok).is_ok(), "{ok}");
        }
        for bad in [".", "..", "a:b", "a|b", "a b", "a/b", "é", &"t".repeat(151)] {
            assert!(check_tenant_id(bad).is_err(), "{bad}");
        }
        assert!(check_tenant_id("a|b").unwrap_err().contains("'|'"));
    }
}
