//! Sources: where entries come from (tailed files now; the journal later).
//!
//! (Being written.)
