//! Reading a spool directory from outside the agent: what it holds from a
//! given offset, without changing anything.
//!
//! Owns: [`entries_from`], used by tests (which lines would be sent again
//! after a crash) and handy when debugging a node's spool. It walks the
//! segments chunk by chunk, checking every checksum, and stops at the first
//! chunk that does not check out at the end of the last segment (a torn
//! write); damaged chunks elsewhere are skipped.
//!
//! Must never: write to the directory.

use super::chunk::{Payload, HEADER_LEN};
use super::{scan, segment};
use crate::entry::Timestamp;
use crate::labels::LabelSet;
use std::fs::File;
use std::io;
use std::path::Path;

/// One spooled entry: its chunk's offset, labels, timestamp and line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spooled {
    pub chunk: u64,
    pub labels: LabelSet,
    pub timestamp: Timestamp,
    pub line: String,
}

/// Every entry in chunks at offsets `from..to` of the spool in `dir`.
pub fn entries_from(dir: &Path, from: u64, to: u64) -> io::Result<Vec<Spooled>> {
    let mut out = Vec::new();
    let mut buf = Vec::new();
    let mut scratch = Vec::new();
    for (start, path) in segment::list(dir)? {
        let file = File::open(&path)?;
        let len = file.metadata()?.len();
        let mut pos = 0u64;
        while pos < len && start + pos < to {
            match scan::check_at(&file, pos, len, &mut buf)? {
                Ok(h) => {
                    if start + pos >= from {
                        let mut data = vec![0u8; h.data_len as usize];
                        segment::read_at(&file, &mut data, pos + HEADER_LEN as u64)?;
                        if let Ok(mut p) = Payload::open(&h, &data, &mut scratch) {
                            let labels = p.labels().to_vec();
                            while let Some(Ok(e)) = p.next_entry() {
                                out.push(Spooled {
                                    chunk: start + pos,
                                    labels: labels[e.label].clone(),
                                    timestamp: e.timestamp,
                                    line: e.line.to_string(),
                                });
                            }
                        }
                    }
                    pos += h.total_len() as u64;
                }
                Err(_) => pos = scan::next_good(&file, pos + 1, len, &mut buf)?,
            }
        }
    }
    Ok(out)
}
