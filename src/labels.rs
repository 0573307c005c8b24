//! Label sets: the identity of a Loki stream.
//!
//! Owns: [`LabelSet`], an immutable, sorted, de-duplicated set of label pairs
//! behind an `Arc`, with its hash computed once. Every entry of a stream shares
//! the same `Arc`, so the per-line cost of labels is one reference-count
//! increment, and grouping by stream in the batcher hashes a `u64`.
//!
//! Also owns the Prometheus selector rendering (`{a="b", c="d"}`) that Loki's
//! push API expects, and the rule that labels starting with `__` never leave the
//! agent ([`LabelSet::render`] skips them, as it skips empty values, which Loki
//! drops anyway).
//!
//! And [`Interner`]: for readers that decode the same streams over and over
//! (the spool's lanes), one shared set per stream instead of one per read.
//!
//! Must never: be mutated in place (derive a new set with [`LabelSet::with`]),
//! or be rebuilt per line on a hot path (cache derived sets per stream instead).

use std::collections::hash_map::DefaultHasher;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// An immutable set of labels, cheap to clone and compare.
///
/// One allocation whatever the number of pairs: a node with 5,000 streams
/// holds several sets per stream (its file's, the `cri` stage's with
/// `stream`, the spool lane's decoded one), and a box per pair — or even
/// one each for the text and the bounds — costs more in allocator
/// overhead than the text itself. Laid out as:
///
/// `hash` (u64) | `n` pairs (u32) | `2n` ends (u32) | text
///
/// where the text is every name and value end to end, pairs sorted by name,
/// names unique; end `2i` is where name `i` ends and end `2i + 1` where its
/// value ends (name `i` starts where the value before it ended, or at 0).
#[derive(Clone)]
pub struct LabelSet(Arc<[u8]>);

/// Bytes before the ends: the hash and the number of pairs.
const HEAD: usize = 12;

fn read_u32(b: &[u8], at: usize) -> usize {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w) as usize
}

impl LabelSet {
    /// Builds a set from pairs; a later duplicate name replaces an earlier one.
    pub fn new<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut v: Vec<(K, V)> = pairs.into_iter().collect();
        // Stable sort keeps insertion order among equal names; keep the last.
        v.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
        let v = &v;
        Self::from_sorted(
            v.iter()
                .enumerate()
                .filter(move |(i, p)| v.get(i + 1).is_none_or(|n| n.0.as_ref() != p.0.as_ref()))
                .map(|(_, (k, v))| (k.as_ref(), v.as_ref())),
        )
    }

    /// From pairs already sorted by name with unique names.
    fn from_sorted<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)> + Clone) -> Self {
        let hash = hash_sorted(pairs.clone());
        Self::from_sorted_hashed(pairs, hash)
    }

    /// [`Self::from_sorted`] when the caller already has `hash_sorted(pairs)`.
    fn from_sorted_hashed<'a>(
        pairs: impl Iterator<Item = (&'a str, &'a str)> + Clone,
        hash: u64,
    ) -> Self {
        // Ends are u32: a set's text is kept under 4 GiB by leaving out the
        // pairs past it (Loki refuses a value over 2 KiB by default anyway).
        let (mut len, mut n) = (0usize, 0usize);
        for (k, v) in pairs.clone() {
            if len + k.len() + v.len() > u32::MAX as usize {
                tracing::warn!(label = k, "label set over 4 GiB: later labels left out");
                break;
            }
            len += k.len() + v.len();
            n += 1;
        }
        let mut buf = Vec::with_capacity(HEAD + 8 * n + len);
        buf.extend_from_slice(&hash.to_le_bytes());
        buf.extend_from_slice(&(n as u32).to_le_bytes());
        let mut end = 0;
        for (k, v) in pairs.clone().take(n) {
            end += k.len();
            buf.extend_from_slice(&(end as u32).to_le_bytes());
            end += v.len();
            buf.extend_from_slice(&(end as u32).to_le_bytes());
        }
        for (k, v) in pairs.take(n) {
            buf.extend_from_slice(k.as_bytes());
            buf.extend_from_slice(v.as_bytes());
        }
        LabelSet(Arc::from(buf))
    }

    /// Every name and value end to end.
    fn text(&self) -> &str {
        let b = &self.0[HEAD + 8 * self.len()..];
        // SAFETY: built only by `from_sorted_hashed`, which copies whole
        // `&str`s end to end: valid UTF-8, and every end it records falls on
        // a boundary between them (so slicing by the ends cannot panic).
        unsafe { std::str::from_utf8_unchecked(b) }
    }

    fn end(&self, k: usize) -> usize {
        read_u32(&self.0, HEAD + 4 * k)
    }

    fn name(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.end(2 * i - 1) };
        &self.text()[start..self.end(2 * i)]
    }

    fn value(&self, i: usize) -> &str {
        &self.text()[self.end(2 * i)..self.end(2 * i + 1)]
    }

    /// The empty set.
    pub fn empty() -> Self {
        Self::from_sorted(std::iter::empty())
    }

    /// Value of label `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.name(mid).cmp(name) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(self.value(mid)),
            }
        }
        None
    }

    /// Pairs in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + Clone {
        (0..self.len()).map(move |i| (self.name(i), self.value(i)))
    }

    pub fn len(&self) -> usize {
        read_u32(&self.0, 8)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True if both are the same set in memory (not merely equal).
    pub fn shares(&self, other: &LabelSet) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The precomputed hash (stable within one process).
    pub fn hash_u64(&self) -> u64 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&self.0[..8]);
        u64::from_le_bytes(w)
    }

    /// A new set with `name` set to `value` (replacing any previous value).
    /// Returns a clone of `self` when the label already has that value.
    pub fn with(&self, name: &str, value: &str) -> LabelSet {
        if self.get(name) == Some(value) {
            return self.clone();
        }
        self.merged([(name, value)])
    }

    /// A new set with every pair of `extra` set (replacing existing values).
    pub fn merged<'a, I>(&self, extra: I) -> LabelSet
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let mut pairs: Vec<(&str, &str)> = self.iter().collect();
        for (k, v) in extra {
            pairs.push((k, v));
        }
        LabelSet::new(pairs)
    }

    /// A new set without `name`; a clone of `self` if it is absent.
    pub fn without(&self, name: &str) -> LabelSet {
        if self.get(name).is_none() {
            return self.clone();
        }
        Self::from_sorted(self.iter().filter(|(k, _)| *k != name))
    }

    /// True if any label would be sent to Loki (not `__`-prefixed, not empty).
    pub fn has_public(&self) -> bool {
        self.public().next().is_some()
    }

    /// The pairs that leave the agent: no `__` prefix, non-empty value.
    pub fn public(&self) -> impl Iterator<Item = (&str, &str)> {
        self.iter()
            .filter(|(k, v)| !k.starts_with("__") && !v.is_empty())
    }

    /// Renders the public pairs as a Prometheus selector, `{a="b", c="d"}`,
    /// with values quoted as Go's `strconv.Quote` would (what Loki parses).
    pub fn render(&self) -> String {
        render_pairs(self.public(), self.len())
    }
}

/// Renders `pairs` (public, sorted by name, names unique; about `n` of them)
/// as [`LabelSet::render`] does.
pub fn render_pairs<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>, n: usize) -> String {
    let mut s = String::with_capacity(16 + n * 24);
    render_pairs_into(pairs, &mut s);
    s
}

/// [`render_pairs`], appended to `s`.
pub fn render_pairs_into<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>, s: &mut String) {
    s.push('{');
    let mut first = true;
    for (k, v) in pairs {
        if !first {
            s.push_str(", ");
        }
        first = false;
        s.push_str(k);
        s.push_str("=\"");
        quote_into(s, v);
        s.push('"');
    }
    s.push('}');
}

/// The hash of a set whose sorted, unique pairs are `pairs`.
fn hash_sorted<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> u64 {
    let mut h = DefaultHasher::new();
    for (k, v) in pairs {
        k.hash(&mut h);
        0xffu8.hash(&mut h);
        v.hash(&mut h);
        0xfeu8.hash(&mut h);
    }
    h.finish()
}

/// Sets met before, handed out again instead of built again.
///
/// For a reader that meets the same streams over and over in data it
/// decodes (the spool's lanes: every chunk carries the label table of its
/// streams): a set seen before costs a hash and a compare, not an
/// allocation, and every entry of a stream shares one set (so the client's
/// route cache, keyed by the set, holds no copy of its own).
///
/// Must never: hand out a set that is not equal to the pairs asked for, or
/// grow without bound (cleared when full, like the route cache).
#[derive(Default)]
pub struct Interner {
    seen: std::collections::HashMap<u64, LabelSet, std::hash::BuildHasherDefault<PassThrough>>,
}

impl Interner {
    /// Sets remembered before the interner is cleared.
    pub const CAP: usize = 16_384;

    /// The set of `pairs` (any order; a later duplicate name wins).
    pub fn get(&mut self, pairs: &[(&str, &str)]) -> LabelSet {
        let sorted = pairs.windows(2).all(|w| w[0].0 < w[1].0);
        if !sorted {
            return LabelSet::new(pairs.iter().copied());
        }
        let hash = hash_sorted(pairs.iter().copied());
        if let Some(l) = self.seen.get(&hash) {
            // The map is keyed by the hash: only the pairs are left to compare.
            if l.iter().eq(pairs.iter().copied()) {
                return l.clone();
            }
            // A collision: correct, only not shared.
            return LabelSet::from_sorted_hashed(pairs.iter().copied(), hash);
        }
        if self.seen.len() >= Self::CAP {
            self.seen.clear();
        }
        let l = LabelSet::from_sorted_hashed(pairs.iter().copied(), hash);
        self.seen.insert(hash, l.clone());
        l
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

/// Appends `v` escaped as inside a Go double-quoted string. Every byte
/// that needs escaping is ASCII, so the runs between them are copied whole
/// (a stream's selector is rendered at each push: a `char` at a time it was
/// ~40 instructions a byte).
pub fn quote_into(s: &mut String, v: &str) {
    let mut start = 0;
    for (i, &c) in v.as_bytes().iter().enumerate() {
        if c >= 0x20 && c != b'"' && c != b'\\' && c != 0x7f {
            continue;
        }
        s.push_str(&v[start..i]);
        match c {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            c => {
                use std::fmt::Write;
                let _ = write!(s, "\\x{c:02x}");
            }
        }
        start = i + 1;
    }
    s.push_str(&v[start..]);
}

impl PartialEq for LabelSet {
    fn eq(&self, other: &Self) -> bool {
        // The bytes hold the hash first: unequal sets differ early.
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}
impl Eq for LabelSet {}

impl Hash for LabelSet {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash_u64());
    }
}

/// A hasher for maps keyed by [`LabelSet`]: the set's hash is computed once
/// when it is built, so hashing it again per lookup is wasted work.
#[derive(Default, Clone, Copy)]
pub struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by `LabelSet`; anything else still works.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 ^= v;
    }
}

/// A map keyed by label sets, hashed once per set, not per lookup.
pub type LabelMap<V> =
    std::collections::HashMap<LabelSet, V, std::hash::BuildHasherDefault<PassThrough>>;

impl fmt::Debug for LabelSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (k, v)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{k}={v:?}")?;
        }
        f.write_str("}")
    }
}

impl Default for LabelSet {
    fn default() -> Self {
        Self::empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `quote_into` as it was, a `char` at a time: the reference.
    fn quote_by_char(v: &str) -> String {
        let mut s = String::new();
        for c in v.chars() {
            match c {
                '"' => s.push_str("\\\""),
                '\\' => s.push_str("\\\\"),
                '\n' => s.push_str("\\n"),
                '\r' => s.push_str("\\r"),
                '\t' => s.push_str("\\t"),
                c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                    use std::fmt::Write;
                    let _ = write!(s, "\\x{:02x}", c as u32);
                }
                c => s.push(c),
            }
        }
        s
    }

    #[test]
    fn quoting_escapes_what_go_escapes() {
        let mut s = String::new();
        quote_into(&mut s, "a\"b\\c\nd\re\tf\u{1}g\u{7f}h é✓");
        assert_eq!(s, "a\\\"b\\\\c\\nd\\re\\tf\\x01g\\x7fh é✓");
    }

    proptest::proptest! {
        #[test]
        fn quoting_by_runs_is_quoting_by_char(v in "(\\PC|[\"\\\\\n\r\t\u{0}-\u{1f}\u{7f}]){0,40}") {
            let mut s = String::from("x=");
            quote_into(&mut s, &v);
            proptest::prop_assert_eq!(s, format!("x={}", quote_by_char(&v)));
        }
    }

    #[test]
    fn sorted_deduplicated_last_wins() {
        let l = LabelSet::new([("b", "1"), ("a", "2"), ("b", "3")]);
        assert_eq!(l.iter().collect::<Vec<_>>(), vec![("a", "2"), ("b", "3")]);
    }

    #[test]
    fn render_skips_reserved_and_empty_and_quotes() {
        let l = LabelSet::new([
            ("job", "x\"y\\z\n"),
            ("__path__", "/var/log"),
            ("empty", ""),
            ("app", "é"),
        ]);
        assert_eq!(l.render(), r#"{app="é", job="x\"y\\z\n"}"#);
    }

    #[test]
    fn equal_sets_hash_equal_and_with_is_identity_when_unchanged() {
        let a = LabelSet::new([("a", "1"), ("b", "2")]);
        let b = LabelSet::new([("b", "2"), ("a", "1")]);
        assert_eq!(a, b);
        assert_eq!(a.hash_u64(), b.hash_u64());
        let c = a.with("a", "1");
        assert!(Arc::ptr_eq(&a.0, &c.0));
        assert_eq!(a.with("c", "3").get("c"), Some("3"));
        assert_eq!(a.without("a").get("a"), None);
    }

    proptest::proptest! {
        /// The packed text and bounds read back as the map they were built
        /// from: last value wins, names in order, every name found, empty
        /// names and values kept apart from their neighbours.
        #[test]
        fn reads_back_as_the_map_it_was_built_from(
            pairs in proptest::collection::vec(("[a-c_é]{0,3}", "[a-c\"é]{0,3}"), 0..8),
            probe in "[a-c_é]{0,3}",
        ) {
            let model: std::collections::BTreeMap<&str, &str> =
                pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let l = LabelSet::new(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            proptest::prop_assert_eq!(l.iter().collect::<Vec<_>>(), model.clone().into_iter().collect::<Vec<_>>());
            proptest::prop_assert_eq!(l.len(), model.len());
            for (k, v) in &model {
                proptest::prop_assert_eq!(l.get(k), Some(*v));
            }
            proptest::prop_assert_eq!(l.get(&probe), model.get(probe.as_str()).copied());
            let rebuilt = LabelSet::new(model.iter().map(|(k, v)| (*k, *v)));
            proptest::prop_assert_eq!(&rebuilt, &l);
            proptest::prop_assert_eq!(rebuilt.hash_u64(), l.hash_u64());
            let without = l.without(&probe);
            proptest::prop_assert_eq!(without.get(&probe), None);
            proptest::prop_assert_eq!(without.len(), model.len() - usize::from(model.contains_key(probe.as_str())));
        }
    }

    #[test]
    fn the_interner_hands_out_one_set_per_stream_equal_to_what_was_asked() {
        let mut i = Interner::default();
        let a = i.get(&[("job", "a"), ("pod", "p")]);
        let again = i.get(&[("job", "a"), ("pod", "p")]);
        assert!(a.shares(&again));
        assert_eq!(a, LabelSet::new([("pod", "p"), ("job", "a")]));
        let b = i.get(&[("job", "a"), ("pod", "q")]);
        assert!(!b.shares(&a));
        assert_eq!(b.get("pod"), Some("q"));
        // Unsorted or duplicated pairs are built as `LabelSet::new` would.
        let c = i.get(&[("pod", "p"), ("job", "a"), ("job", "b")]);
        assert_eq!(c, LabelSet::new([("job", "b"), ("pod", "p")]));
        assert_eq!(i.get(&[]), LabelSet::empty());
        for n in 0..Interner::CAP + 5 {
            i.get(&[("n", &n.to_string())]);
        }
        assert!(i.len() <= Interner::CAP);
    }

    #[test]
    fn sets_differing_only_in_where_a_name_ends_are_different() {
        let a = LabelSet::new([("ab", "c")]);
        let b = LabelSet::new([("a", "bc")]);
        assert_ne!(a, b);
    }
}
