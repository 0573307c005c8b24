//! A line's text: owned, or a slice of a read chunk shared by its lines.
//!
//! Owns: [`Text`], the type of [`crate::entry::Entry::line`], and [`Chunk`],
//! the bytes of one read turned into shared text once.
//!
//! Why: a file read hands out a chunk of up to `read_chunk` bytes holding
//! hundreds of lines. Copying each line into its own `String` cost a
//! `malloc` per line on the reading thread and a `free` per line on the
//! sending thread (glibc's slowest path: a free into another thread's
//! arena), 10–15 % of the agent's CPU in profiles, and more at 5,000 files
//! where the lines are scattered through a fragmented heap. A [`Chunk`] is
//! one allocation per read; its lines are `(chunk, start, len)` and keep it
//! alive by reference count until the last of them is acknowledged.
//!
//! Design: a chunk is validated as UTF-8 once; a line inside its valid part
//! is shared, any other line (spanning two reads, cut mid-character,
//! invalid bytes) is owned, as before. A stage that changes a line gets an
//! owned `String` ([`Text::make_mut`]); trimming the front (the `cri`
//! stage's prefix) only moves the slice ([`Text::drop_front`]).
//!
//! Must never: hand out text that is not valid UTF-8 (shared text is a
//! sub-slice of a `str`, sliced with checked boundaries: no `unsafe`), or let
//! a few lines pin far more memory than they hold for long —
//! [`Text::compact`] copies a line out of a chunk that is mostly dead; the
//! fan-out calls it before charging the memory budget for a line (after
//! the stages dropped what they drop) and the batcher before holding one.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// The text of one read, shared by the lines inside its valid UTF-8 part.
pub struct Chunk {
    /// `Arc<String>`, not `Arc<str>`: a thin pointer keeps [`Text`] at 24
    /// bytes, as a `String` is (every entry is moved several times).
    text: Arc<String>,
}

impl Chunk {
    /// One allocation holding `bytes` up to the end of their valid UTF-8
    /// (a chunk may end in the middle of a character: that tail belongs to
    /// a line that continues in the next read and is never shared).
    pub fn new(bytes: &[u8]) -> Self {
        // simdutf8's check (AVX2 or SSE4.2, chosen at run time) instead of
        // std's word-at-a-time one: each read is checked whole, once.
        let valid = match simdutf8::compat::from_utf8(bytes) {
            Ok(s) => s,
            // `valid_up_to` is a char boundary of a valid prefix.
            Err(e) => std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
        };
        Chunk {
            text: Arc::new(valid.to_owned()),
        }
    }

    /// A chunk of text already checked (e.g. the lines of a spool chunk put
    /// end to end: one allocation for all of them).
    pub fn from_string(text: String) -> Self {
        Chunk {
            text: Arc::new(text),
        }
    }

    /// The text of `start..end` (byte offsets in the read) if it lies in the
    /// valid part on character boundaries.
    pub fn line(&self, start: usize, end: usize) -> Option<Text> {
        self.text.get(start..end)?;
        let start32 = u32::try_from(start).ok()?;
        let len = u32::try_from(end - start).ok()?;
        Some(Text(Repr::Shared {
            chunk: self.text.clone(),
            start: start32,
            len,
        }))
    }
}

/// A line's text. Reads as a `str`; see the module docs.
#[derive(Clone)]
pub struct Text(Repr);

#[derive(Clone)]
enum Repr {
    Owned(String),
    Shared {
        chunk: Arc<String>,
        start: u32,
        len: u32,
    },
}

/// A line is copied out of its chunk when the chunk's live lines, at this
/// line's size, would fill less than one part in this many of it.
const SPARSE: usize = 4;

impl Text {
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Owned(s) => s,
            Repr::Shared { chunk, start, len } => {
                let (s, e) = (*start as usize, *start as usize + *len as usize);
                // Built from a checked sub-slice and only ever narrowed at
                // checked boundaries: `get` cannot fail; "" keeps it total.
                chunk.get(s..e).unwrap_or("")
            }
        }
    }

    /// Length in bytes, without touching the chunk (the encoder sizes
    /// every line before it copies any).
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Owned(s) => s.len(),
            Repr::Shared { len, .. } => *len as usize,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The text as an owned `String` to change (copied out of a chunk once).
    pub fn make_mut(&mut self) -> &mut String {
        if let Repr::Shared { .. } = self.0 {
            self.0 = Repr::Owned(self.as_str().to_owned());
        }
        match &mut self.0 {
            Repr::Owned(s) => s,
            // Just made owned above.
            Repr::Shared { .. } => unreachable!("text was made owned"),
        }
    }

    pub fn into_string(self) -> String {
        match self.0 {
            Repr::Owned(s) => s,
            shared => Text(shared).as_str().to_owned(),
        }
    }

    /// Removes the first `n` bytes (`n` must be a char boundary, as
    /// `String::replace_range` requires; otherwise nothing is removed).
    pub fn drop_front(&mut self, n: usize) {
        if !self.as_str().is_char_boundary(n) {
            return;
        }
        match &mut self.0 {
            Repr::Owned(s) => s.replace_range(..n, ""),
            Repr::Shared { start, len, .. } => {
                // n ≤ len: a char boundary of this text.
                *start += n as u32;
                *len -= n as u32;
            }
        }
    }

    /// Keeps the first `n` bytes (`n` must be a char boundary, as
    /// `String::truncate` requires; otherwise nothing is removed).
    pub fn truncate(&mut self, n: usize) {
        if n >= self.len() || !self.as_str().is_char_boundary(n) {
            return;
        }
        match &mut self.0 {
            Repr::Owned(s) => s.truncate(n),
            Repr::Shared { len, .. } => *len = n as u32,
        }
    }

    /// Copies the line out of its chunk if the chunk is mostly held for
    /// nothing: fewer live lines of this size than would fill a
    /// [`SPARSE`]th of it (e.g. a drop or sampling stage kept one line in
    /// a hundred). Called before a line is held for long (batching).
    pub fn compact(&mut self) {
        if let Repr::Shared { chunk, len, .. } = &self.0 {
            let live = Arc::strong_count(chunk).saturating_mul((*len as usize).max(1));
            if live.saturating_mul(SPARSE) < chunk.len() {
                self.0 = Repr::Owned(self.as_str().to_owned());
            }
        }
    }

    /// True if the text is a slice of a shared chunk (tests, benchmarks).
    pub fn is_shared(&self) -> bool {
        matches!(self.0, Repr::Shared { .. })
    }
}

impl Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl From<String> for Text {
    fn from(s: String) -> Self {
        Text(Repr::Owned(s))
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Text(Repr::Owned(s.to_owned()))
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Text {}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Text {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<Text> for &str {
    fn eq(&self, other: &Text) -> bool {
        *self == other.as_str()
    }
}

impl PartialEq<Text> for String {
    fn eq(&self, other: &Text) -> bool {
        self == other.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_as_small_as_a_string() {
        assert_eq!(std::mem::size_of::<Text>(), std::mem::size_of::<String>());
    }

    #[test]
    fn lines_of_a_chunk_share_it_and_read_as_their_bytes() {
        let c = Chunk::new(b"ab\ncd\n");
        let (a, b) = (c.line(0, 2).unwrap(), c.line(3, 5).unwrap());
        assert_eq!((a.as_str(), b.as_str()), ("ab", "cd"));
        assert_eq!((a.len(), c.line(2, 2).unwrap().is_empty()), (2, true));
        assert!(a.is_shared() && b.is_shared());
        drop(c);
        assert_eq!(a, "ab", "a line keeps its chunk alive");
    }

    #[test]
    fn only_the_valid_utf8_part_of_a_chunk_is_shared() {
        // "é" is 0xC3 0xA9: the read ends after its first byte.
        let c = Chunk::new(b"ok\n\xc3");
        assert!(c.line(0, 2).is_some());
        assert!(c.line(3, 4).is_none(), "a line ending mid-character");
        let bad = Chunk::new(b"a\xffb\nok\n");
        assert!(bad.line(0, 3).is_none() && bad.line(4, 6).is_none());
        // A cut inside a character is no char boundary.
        let c = Chunk::new("é\n".as_bytes());
        assert!(c.line(0, 1).is_none());
    }

    /// Bytes built from pieces that exercise a vectorised UTF-8 check: long
    /// ASCII runs (whole 32- and 64-byte blocks), two- to four-byte
    /// characters, stray and truncated sequences, cut at any length.
    fn mixed_bytes() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let piece = prop_oneof![
            4 => (0usize..150).prop_map(|n| vec![b'x'; n]),
            1 => Just("é".as_bytes().to_vec()),
            1 => Just("€".as_bytes().to_vec()),
            1 => Just("😀".as_bytes().to_vec()),
            1 => Just(vec![0xff]),
            1 => Just(vec![0x80]),
            1 => Just(vec![0xe2, 0x82]),
            1 => Just(vec![0xed, 0xa0, 0x80]),
        ];
        (proptest::collection::vec(piece, 0..12), any::<usize>()).prop_map(|(ps, cut)| {
            let mut b = ps.concat();
            let keep = if b.is_empty() { 0 } else { cut % (b.len() + 1) };
            b.truncate(keep);
            b
        })
    }

    proptest::proptest! {
        /// A chunk shares exactly the prefix std calls valid UTF-8.
        #[test]
        fn a_chunk_holds_the_valid_prefix_std_finds(bytes in mixed_bytes()) {
            let valid = match std::str::from_utf8(&bytes) {
                Ok(s) => s.len(),
                Err(e) => e.valid_up_to(),
            };
            let c = Chunk::new(&bytes);
            proptest::prop_assert_eq!(c.text.as_bytes(), &bytes[..valid]);
        }
    }

    #[test]
    fn changing_shared_text_copies_it_and_leaves_the_chunk_alone() {
        let c = Chunk::new(b"hello\nworld\n");
        let mut a = c.line(0, 5).unwrap();
        let b = c.line(6, 11).unwrap();
        a.make_mut().push_str("!?");
        assert_eq!((a.as_str(), b.as_str()), ("hello!?", "world"));
        assert!(!a.is_shared() && b.is_shared());
        assert_eq!(a.into_string(), "hello!?");
        assert_eq!(b.into_string(), "world");
    }

    #[test]
    fn dropping_the_front_narrows_the_slice_at_char_boundaries_only() {
        let c = Chunk::new("ts F é-x\n".as_bytes());
        let mut t = c.line(0, 9).unwrap();
        t.drop_front(5);
        assert_eq!(t, "é-x");
        t.drop_front(1);
        assert_eq!(t, "é-x", "not a char boundary: unchanged");
        t.drop_front(2);
        assert!(t.is_shared());
        assert_eq!(t, "-x");
        let mut o = Text::from("ts F x");
        o.drop_front(5);
        assert_eq!(o, "x");
    }

    #[test]
    fn truncating_keeps_a_prefix_at_char_boundaries_only() {
        let c = Chunk::new("aé€z\n".as_bytes());
        let mut t = c.line(0, 7).unwrap();
        t.truncate(5);
        assert_eq!(t, "aé€z", "5 is inside the euro sign: unchanged");
        t.truncate(3);
        assert!(t.is_shared());
        assert_eq!(t, "aé");
        t.truncate(9);
        assert_eq!(t, "aé");
        let mut o = Text::from("abc");
        o.truncate(1);
        assert_eq!(o, "a");
    }

    #[test]
    fn a_line_left_alone_in_a_big_chunk_is_copied_out_when_compacted() {
        let mut bytes = vec![b'x'; 1000];
        bytes.extend_from_slice(b"\nkeep\n");
        let c = Chunk::new(&bytes);
        let mut keep = c.line(1001, 1005).unwrap();
        let mut big = c.line(0, 1000).unwrap();
        drop(c);
        big.compact();
        assert!(big.is_shared(), "a line filling its chunk stays shared");
        drop(big);
        keep.compact();
        assert!(!keep.is_shared(), "4 live bytes of 1,006");
        assert_eq!(keep, "keep");
    }
}
