//! The text of a structured-metadata name or value.
//!
//! Owns: [`MetaStr`], the two halves of an [`crate::entry::MetaPair`].
//!
//! Why: every traced line carries one or two pairs (`trace_id`, `span_id`)
//! and every line of a Kubernetes target its `pod_uid`. As `Arc<str>`s, a
//! shared name or value was a reference count bumped on the reading thread
//! and dropped on the sending one after Loki's answer — one cache line
//! bouncing between the two cores per pair and line — and each detected ID
//! was an allocation of its own, freed on the other thread. Profiled at
//! 5,000 files, dropping the pairs alone was ~4 % of the agent's CPU. Names
//! and IDs are short: a W3C trace ID is 32 hex digits, an X-Ray one 35
//! characters, a pod UID 36. A [`MetaStr`] of up to [`INLINE`] bytes is
//! held in place (copying it is copying 40 bytes, dropping it is nothing);
//! a longer one is a shared `Arc<str>`, as before.
//!
//! Must never: hold text that is not valid UTF-8 (it is only ever made from
//! a `str`, or from bytes checked to be ASCII, and inline text is a whole
//! `str` or those bytes copied), or be bigger than 40
//! bytes (a pair is moved with every entry that has one; a unit test
//! checks the size).

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

/// The longest text held in place; longer text is shared.
pub const INLINE: usize = 38;

/// A structured-metadata name or value: reads as a `str`.
#[derive(Clone)]
pub struct MetaStr(Repr);

#[derive(Clone)]
enum Repr {
    Inline { len: u8, bytes: [u8; INLINE] },
    Shared(Arc<str>),
}

impl MetaStr {
    /// Copies `s` in place if it fits, else into a shared allocation.
    pub fn new(s: &str) -> Self {
        match Self::inline(s) {
            Some(m) => m,
            None => MetaStr(Repr::Shared(s.into())),
        }
    }

    /// Text known to be ASCII, as bytes (a detected hex ID): held in place
    /// after an `is_ascii` check, which is a few word compares, where a
    /// `&str` of it would cost a full UTF-8 check (~1 % of a one-file
    /// drain's instructions, once per traced line). `None` if `b` is not
    /// ASCII or is longer than [`INLINE`].
    fn from_ascii(b: &[u8]) -> Option<Self> {
        if b.len() > INLINE || !b.is_ascii() {
            return None;
        }
        let mut bytes = [0u8; INLINE];
        bytes[..b.len()].copy_from_slice(b);
        Some(MetaStr(Repr::Inline {
            len: b.len() as u8,
            bytes,
        }))
    }

    /// Bytes checked as UTF-8 (`None` if they are not): ASCII ones, as
    /// names and IDs are, by [`Self::from_ascii`]'s cheaper check.
    pub fn from_utf8(b: &[u8]) -> Option<Self> {
        Self::from_ascii(b).or_else(|| std::str::from_utf8(b).ok().map(Self::new))
    }

    fn inline(s: &str) -> Option<Self> {
        let len = u8::try_from(s.len())
            .ok()
            .filter(|&n| usize::from(n) <= INLINE)?;
        let mut bytes = [0u8; INLINE];
        bytes[..s.len()].copy_from_slice(s.as_bytes());
        Some(MetaStr(Repr::Inline { len, bytes }))
    }

    /// The text. Inline text is checked as UTF-8 on the way out (no
    /// `unsafe`), which costs as much as the rest of a line's encoding:
    /// per-line code (sizes, protobuf, the spool) uses [`Self::len`] and
    /// [`Self::as_bytes`] instead, which shadow `str`'s.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // A whole `str` was copied in: always valid; never "" in fact.
            Repr::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            Repr::Shared(s) => s,
        }
    }

    /// The text's UTF-8 bytes, without checking them again.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Repr::Shared(s) => s.as_bytes(),
        }
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Inline { len, .. } => usize::from(*len),
            Repr::Shared(s) => s.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the text is held in place (no allocation, no reference count).
    pub fn is_inline(&self) -> bool {
        matches!(self.0, Repr::Inline { .. })
    }
}

impl Deref for MetaStr {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for MetaStr {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for MetaStr {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for MetaStr {
    fn from(s: &str) -> Self {
        MetaStr::new(s)
    }
}

impl From<String> for MetaStr {
    fn from(s: String) -> Self {
        MetaStr::new(&s)
    }
}

impl From<Box<str>> for MetaStr {
    fn from(s: Box<str>) -> Self {
        MetaStr::inline(&s).unwrap_or_else(|| MetaStr(Repr::Shared(s.into())))
    }
}

/// Keeps a long shared string shared (a target's value on every line).
impl From<Arc<str>> for MetaStr {
    fn from(s: Arc<str>) -> Self {
        MetaStr::inline(&s).unwrap_or(MetaStr(Repr::Shared(s)))
    }
}

impl PartialEq for MetaStr {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for MetaStr {}

impl PartialEq<str> for MetaStr {
    fn eq(&self, other: &str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<&str> for MetaStr {
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialOrd for MetaStr {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for MetaStr {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // UTF-8 orders as its bytes do.
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl Hash for MetaStr {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl serde::Serialize for MetaStr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl fmt::Debug for MetaStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for MetaStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_bytes_are_held_as_the_same_text_and_anything_else_is_refused() {
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        for s in ["", "0", id, &"a".repeat(INLINE)] {
            let m = MetaStr::from_ascii(s.as_bytes()).unwrap();
            assert!(m.is_inline());
            assert_eq!(
                (m.as_str(), m.as_bytes(), m.len()),
                (s, s.as_bytes(), s.len())
            );
            assert!(m == MetaStr::new(s));
        }
        for s in ["é", &"a".repeat(INLINE + 1), &"é".repeat(30)] {
            assert!(MetaStr::from_utf8(s.as_bytes()).unwrap() == MetaStr::new(s));
        }
        assert!(MetaStr::from_utf8(&[b'a', 0xff]).is_none());
        assert!(MetaStr::from_ascii("é".as_bytes()).is_none());
        assert!(MetaStr::from_ascii(&[b'a', 0xff]).is_none());
        assert!(MetaStr::from_ascii("a".repeat(INLINE + 1).as_bytes()).is_none());
    }

    #[test]
    fn short_text_is_held_in_place_and_long_text_is_shared() {
        let uid = "0f3c2a9e-6d1b-4c8e-9a7f-2b5d8e1c4a60"; // 36: a pod UID
        let xray = "1-5759e988-bd862e3fe1be46a994272793"; // 35
        let e19 = "é".repeat(19); // 38 bytes
        for s in ["", "trace_id", uid, xray, e19.as_str()] {
            let m = MetaStr::from(s);
            assert!(m.is_inline(), "{s}");
            assert_eq!(&*m, s);
            assert_eq!((m.as_bytes(), m.len()), (s.as_bytes(), s.len()));
            assert_eq!(m.clone(), m);
        }
        for s in ["x".repeat(INLINE + 1), "é".repeat(20), "a".repeat(300)] {
            let m = MetaStr::from(s.as_str());
            assert!(!m.is_inline(), "{s}");
            assert_eq!(&*m, s.as_str());
            assert_eq!((m.as_bytes(), m.len()), (s.as_bytes(), s.len()));
        }
    }

    #[test]
    fn a_long_shared_string_stays_the_same_allocation() {
        let long: Arc<str> = "v".repeat(64).into();
        let m = MetaStr::from(long.clone());
        let n = m.clone();
        assert!(std::ptr::eq(m.as_str(), &*long));
        assert!(std::ptr::eq(n.as_str(), &*long));
        assert_eq!(Arc::strong_count(&long), 3);
    }

    #[test]
    fn it_compares_hashes_and_orders_as_its_text() {
        use std::collections::HashSet;
        let long = "k".repeat(50);
        let (a, b) = (MetaStr::from(long.as_str()), MetaStr::from(long.clone()));
        assert_eq!(a, b);
        let short = MetaStr::from("a");
        assert!(short < a && a.cmp(&b).is_eq());
        let set: HashSet<MetaStr> = [a, short].into_iter().collect();
        assert!(set.contains(long.as_str()) && set.contains("a"));
        assert_eq!(MetaStr::from("x"), "x");
        assert_eq!(format!("{:?}", MetaStr::from("x")), "\"x\"");
    }

    #[test]
    fn a_pair_stays_within_eighty_bytes() {
        assert!(std::mem::size_of::<MetaStr>() <= 40);
        assert!(std::mem::size_of::<crate::entry::MetaPair>() <= 80);
    }
}
