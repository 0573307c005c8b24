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
//! Must never: be mutated in place (derive a new set with [`LabelSet::with`]),
//! or be rebuilt per line on a hot path (cache derived sets per stream instead).

use std::collections::hash_map::DefaultHasher;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// An immutable set of labels, cheap to clone and compare.
#[derive(Clone)]
pub struct LabelSet(Arc<Inner>);

struct Inner {
    /// Sorted by name, names unique.
    pairs: Box<[(Box<str>, Box<str>)]>,
    hash: u64,
}

impl LabelSet {
    /// Builds a set from pairs; a later duplicate name replaces an earlier one.
    pub fn new<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<Box<str>>,
        V: Into<Box<str>>,
    {
        let mut v: Vec<(Box<str>, Box<str>)> = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        // Stable sort keeps insertion order among equal names; keep the last.
        v.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out: Vec<(Box<str>, Box<str>)> = Vec::with_capacity(v.len());
        for p in v {
            match out.last_mut() {
                Some(last) if last.0 == p.0 => *last = p,
                _ => out.push(p),
            }
        }
        Self::from_sorted(out)
    }

    fn from_sorted(pairs: Vec<(Box<str>, Box<str>)>) -> Self {
        let mut h = DefaultHasher::new();
        for (k, v) in &pairs {
            k.hash(&mut h);
            0xffu8.hash(&mut h);
            v.hash(&mut h);
            0xfeu8.hash(&mut h);
        }
        LabelSet(Arc::new(Inner {
            pairs: pairs.into_boxed_slice(),
            hash: h.finish(),
        }))
    }

    /// The empty set.
    pub fn empty() -> Self {
        Self::from_sorted(Vec::new())
    }

    /// Value of label `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .pairs
            .binary_search_by(|p| (*p.0).cmp(name))
            .ok()
            .map(|i| &*self.0.pairs[i].1)
    }

    /// Pairs in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.pairs.iter().map(|(k, v)| (&**k, &**v))
    }

    pub fn len(&self) -> usize {
        self.0.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.pairs.is_empty()
    }

    /// The precomputed hash (stable within one process).
    pub fn hash_u64(&self) -> u64 {
        self.0.hash
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
        LabelSet::new(
            self.iter()
                .map(|(k, v)| (Box::<str>::from(k), Box::<str>::from(v)))
                .chain(
                    extra
                        .into_iter()
                        .map(|(k, v)| (Box::<str>::from(k), Box::<str>::from(v))),
                ),
        )
    }

    /// A new set without `name`; a clone of `self` if it is absent.
    pub fn without(&self, name: &str) -> LabelSet {
        if self.get(name).is_none() {
            return self.clone();
        }
        Self::from_sorted(
            self.0
                .pairs
                .iter()
                .filter(|p| &*p.0 != name)
                .cloned()
                .collect(),
        )
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
        let mut s = String::with_capacity(16 + self.len() * 24);
        s.push('{');
        let mut first = true;
        for (k, v) in self.public() {
            if !first {
                s.push_str(", ");
            }
            first = false;
            s.push_str(k);
            s.push_str("=\"");
            quote_into(&mut s, v);
            s.push('"');
        }
        s.push('}');
        s
    }
}

/// Appends `v` escaped as inside a Go double-quoted string.
pub fn quote_into(s: &mut String, v: &str) {
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
}

impl PartialEq for LabelSet {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
            || (self.0.hash == other.0.hash && self.0.pairs == other.0.pairs)
    }
}
impl Eq for LabelSet {}

impl Hash for LabelSet {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0.hash);
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
}
