//! Promtail's `drop` stage — not implemented yet: accepted, reported at
//! start-up ([`HONOURED`] is false), and left out of the pipeline.

use super::BuildCtx;
use crate::pipeline::Stage;

/// Whether the stage runs (false: reported as not honoured).
pub const HONOURED: bool = false;

/// The stage's YAML options.
pub type Config = crate::config::Unhonoured;

/// Builds the stage (`None`: not honoured, left out).
pub fn build(_c: Option<&Config>, _ctx: &BuildCtx) -> Result<Option<Box<dyn Stage>>, String> {
    Ok(None)
}
