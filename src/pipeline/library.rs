//! Named pipelines: the ready-made ones in the repository's `pipelines/`
//! (embedded in the binary, so they need no files on the node) and the
//! user's own `<name>.yaml` files.
//!
//! Owns: [`BUILTIN`] (the one list of built-in pipelines), [`Library`] (the
//! name → stages map a job resolves `- pipeline: <name>` and the
//! `tailtrace.io/pipeline` pod annotation against) and reading a pipelines
//! directory ([`Library::load_dir`]). A user file named like a built-in
//! replaces it (logged at info).
//!
//! A named pipeline is a YAML list of stages, exactly like
//! `pipeline_stages`; it may itself use `- pipeline: <other>` (the
//! ready-made ones use the [`BUILDING_BLOCKS`]: `level` sets the `level`
//! label for all of them; `klog` and `klog-journal` share `klog-parse`, and
//! only `klog`, for files, adds `klog-time`). Expansion happens when a
//! pipeline is built ([`crate::pipeline::stages::build_with`]), which
//! refuses a cycle.
//!
//! Must never: read files per line or after start-up, or let two files
//! silently define one name.

use crate::pipeline::stages::StageConfig;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The built-in pipelines: (name, YAML text of `pipelines/<name>.yaml`).
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "containerd",
        include_str!("../../pipelines/containerd.yaml"),
    ),
    ("go", include_str!("../../pipelines/go.yaml")),
    ("java", include_str!("../../pipelines/java.yaml")),
    ("json-app", include_str!("../../pipelines/json-app.yaml")),
    ("klog", include_str!("../../pipelines/klog.yaml")),
    (
        "klog-journal",
        include_str!("../../pipelines/klog-journal.yaml"),
    ),
    (
        "klog-parse",
        include_str!("../../pipelines/klog-parse.yaml"),
    ),
    ("klog-time", include_str!("../../pipelines/klog-time.yaml")),
    ("level", include_str!("../../pipelines/level.yaml")),
    (
        "logfmt-app",
        include_str!("../../pipelines/logfmt-app.yaml"),
    ),
    ("nginx", include_str!("../../pipelines/nginx.yaml")),
    ("python", include_str!("../../pipelines/python.yaml")),
];

/// The built-ins that are building blocks, used inside the others
/// (`- pipeline: level`) rather than on their own: no golden cases of
/// their own, the pipelines using them exercise them.
pub const BUILDING_BLOCKS: &[&str] = &["klog-parse", "klog-time", "level"];

/// One named pipeline: its stages and where it came from (for errors).
#[derive(Debug, Clone)]
pub struct Named {
    pub stages: Vec<StageConfig>,
    /// `built-in` or the file's path.
    pub origin: String,
}

/// Name → pipeline. See the module docs.
#[derive(Debug, Clone, Default)]
pub struct Library {
    map: BTreeMap<String, Named>,
}

/// Parses a named pipeline's text: a YAML list of stages (empty text: no
/// stages).
pub fn parse(text: &str) -> Result<Vec<StageConfig>, String> {
    let de = serde_yaml_ng::Deserializer::from_str(text);
    serde_yaml_ng::with::singleton_map_recursive::deserialize::<Option<Vec<StageConfig>>, _>(de)
        .map(Option::unwrap_or_default)
        .map_err(|e| e.to_string())
}

impl Library {
    /// The built-in pipelines (parsed once per process). One that does not
    /// parse — a defect the golden tests catch — is logged and left out.
    pub fn builtins() -> Library {
        static BUILT: OnceLock<Library> = OnceLock::new();
        BUILT
            .get_or_init(|| {
                let mut lib = Library::default();
                for (name, text) in BUILTIN {
                    match parse(text) {
                        Ok(stages) => {
                            lib.map.insert(
                                name.to_string(),
                                Named {
                                    stages,
                                    origin: "built-in".into(),
                                },
                            );
                        }
                        Err(e) => tracing::error!(pipeline = name, error = %e,
                            "built-in pipeline does not parse; left out"),
                    }
                }
                lib
            })
            .clone()
    }

    /// The built-ins plus the files of `dir` (see [`Library::load_dir`]).
    pub fn with_dir(dir: &Path, required: bool) -> Result<Library, String> {
        let mut lib = Library::builtins();
        lib.load_dir(dir, required)?;
        Ok(lib)
    }

    pub fn get(&self, name: &str) -> Option<&Named> {
        self.map.get(name)
    }

    /// Every name, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.map.keys().map(String::as_str).collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Named)> {
        self.map.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Adds every `<name>.yaml` (or `.yml`) file of `dir`, a YAML list of
    /// stages like `pipeline_stages`. Dot-files and directories are skipped
    /// (a ConfigMap mount's `..data`). A file named like a built-in replaces
    /// it. Errors name the file: one that does not parse, two files with one
    /// name; a missing directory is an error only if `required`. Stages
    /// tailtrace does not honour yet are kept (left out at build) with a
    /// warning.
    pub fn load_dir(&mut self, dir: &Path, required: bool) -> Result<(), String> {
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                tracing::debug!(dir = %dir.display(), "no pipelines directory; built-in pipelines only");
                return Ok(());
            }
            Err(e) => return Err(format!("{}: {e}", dir.display())),
        };
        let mut files: Vec<(String, PathBuf)> = Vec::new();
        for ent in rd {
            let path = ent.map_err(|e| format!("{}: {e}", dir.display()))?.path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let stem = name
                .strip_suffix(".yaml")
                .or_else(|| name.strip_suffix(".yml"));
            match stem {
                Some(s) if !s.is_empty() && !name.starts_with('.') && path.is_file() => {
                    files.push((s.to_string(), path))
                }
                _ => {}
            }
        }
        files.sort();
        for (i, (name, path)) in files.iter().enumerate() {
            let f = path.display();
            if i > 0 && files[i - 1].0 == *name {
                return Err(format!("{f}: a pipeline named {name:?} is defined twice"));
            }
            let text = std::fs::read_to_string(path).map_err(|e| format!("{f}: {e}"))?;
            let stages = parse(&text).map_err(|e| format!("{f}: {e}"))?;
            for (j, s) in stages.iter().enumerate() {
                if let Some(stage) = s.unhonoured_name() {
                    tracing::warn!(file = %f, stage = %format!("[{j}].{stage}"),
                        "pipeline stage accepted but NOT honoured by tailtrace yet");
                }
            }
            let named = Named {
                stages,
                origin: f.to_string(),
            };
            if let Some(old) = self.map.insert(name.clone(), named) {
                tracing::info!(pipeline = %name, file = %f, replaced = %old.origin,
                    "pipeline file overrides the pipeline of the same name");
            }
        }
        Ok(())
    }
}

/// Whether `stages` (or stages nested in a `match`) reference a named
/// pipeline that is not built in.
pub fn references_other_than_builtin(stages: &[StageConfig]) -> bool {
    stages.iter().any(|s| match s {
        StageConfig::Pipeline(n) => !BUILTIN.iter().any(|(b, _)| b == n),
        StageConfig::Match(Some(m)) => m
            .stages
            .as_deref()
            .is_some_and(references_other_than_builtin),
        _ => false,
    })
}

#[cfg(test)]
#[path = "library/tests.rs"]
mod tests;

#[cfg(test)]
#[path = "library/golden.rs"]
mod golden;
