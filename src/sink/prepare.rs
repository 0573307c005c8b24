//! What a client does to an entry before batching it: pick the tenant, merge
//! the external labels, enforce `max_line_size`.
//!
//! Owns: [`Router`], a bounded cache from an entry's label set (as the
//! pipeline produced it, `__` labels included) to its [`Route`] — tenant and
//! [`StreamKey`] (public labels merged with `external_labels`, rendered
//! once, without a merged set) — so labels are merged once per stream, never
//! per line; and
//! [`limit_line`], the `max_line_size` rule.
//!
//! Tenant: the reserved label `__tenant_id__` (Promtail's
//! `ReservedLabelTenantID`, set by the `tenant` stage) overrides the client's
//! `tenant_id`; an empty tenant means "no `X-Scope-OrgID` header".
//! External labels are overridden by the entry's own labels of the same name
//! (Promtail merges them that way).
//!
//! An entry whose public label set is empty (after the merge) cannot be
//! pushed — Loki answers 400 "at least one label pair is required per
//! stream" — so the client drops it, counted with reason `empty_labels`.
//!
//! Must never: grow without bound (the cache is cleared when full), or cut a
//! line inside a UTF-8 character.

use super::batch::{external_pairs, StreamKey};
use crate::labels::LabelSet;
use crate::text::Text;
use std::sync::Arc;

/// Promtail's reserved label carrying a per-entry tenant.
pub const TENANT_LABEL: &str = "__tenant_id__";

/// Drop reason for entries without any public label.
pub const REASON_EMPTY_LABELS: &str = "empty_labels";
/// Drop / mutation reason for lines over `max_line_size`.
pub const REASON_LINE_TOO_LONG: &str = "line_too_long";

/// Streams remembered before the cache is cleared.
const CACHE_CAP: usize = 16_384;

/// Where an entry goes.
#[derive(Clone, Debug)]
pub struct Route {
    pub tenant: Option<Arc<str>>,
    pub key: StreamKey,
}

/// Per-client label merging and tenant selection. See the module docs.
pub struct Router {
    /// Public, sorted, unique (see [`external_pairs`]).
    external: Arc<[(String, String)]>,
    default_tenant: Option<Arc<str>>,
    /// `None` = the merged set has no public label (to be dropped).
    cache: crate::labels::LabelMap<Option<usize>>,
    /// The routes the cache points into.
    routes: Vec<Route>,
    /// The route found last: lines come in runs of one stream, and
    /// comparing a set with the route's own (a pointer comparison) is
    /// cheaper than a lookup.
    last: Option<usize>,
}

impl Router {
    pub fn new<'a>(
        external: impl IntoIterator<Item = (&'a String, &'a String)>,
        default_tenant: Option<&str>,
    ) -> Self {
        Router {
            external: external_pairs(external),
            default_tenant: default_tenant.filter(|t| !t.is_empty()).map(Arc::from),
            cache: Default::default(),
            routes: Vec::new(),
            last: None,
        }
    }

    /// The tenant to report for an entry that has no route (metrics only).
    pub fn tenant_of(&self, labels: &LabelSet) -> Option<Arc<str>> {
        match labels.get(TENANT_LABEL) {
            Some(t) if !t.is_empty() => Some(Arc::from(t)),
            _ => self.default_tenant.clone(),
        }
    }

    /// The route of an entry with `labels` (an index for [`Router::get`]),
    /// or `None` if it has no public label to send. Looked up once per
    /// line: no hashing beyond the set's own, no clone.
    pub fn route(&mut self, labels: &LabelSet) -> Option<usize> {
        if let Some(i) = self.last {
            if self.routes[i].key.is_of(labels) {
                return Some(i);
            }
        }
        if let Some(r) = self.cache.get(labels) {
            self.last = *r;
            return *r;
        }
        if self.cache.len() >= CACHE_CAP {
            self.cache.clear();
            self.routes.clear();
            self.last = None;
        }
        let r = self.compute(labels).map(|route| {
            self.routes.push(route);
            self.routes.len() - 1
        });
        self.cache.insert(labels.clone(), r);
        self.last = r;
        r
    }

    /// The route at index `i` (from [`Router::route`]).
    pub fn get(&self, i: usize) -> &Route {
        &self.routes[i]
    }

    fn compute(&self, labels: &LabelSet) -> Option<Route> {
        // The entry's own set, shared; the entry's labels override the
        // external ones (see `StreamKey::public`).
        let key = StreamKey::with_external(labels.clone(), self.external.clone());
        if key.is_empty() {
            return None;
        }
        Some(Route {
            tenant: self.tenant_of(labels),
            key,
        })
    }
}

/// What [`limit_line`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum LineLimit {
    /// Within the limit (or no limit).
    Fits,
    /// Cut to the limit; this many bytes were removed.
    Truncated(usize),
    /// Over the limit and truncation is off: drop it.
    TooLong,
}

/// Applies `max_line_size` (`max` bytes, 0 = no limit). Truncation cuts on
/// a character boundary, so the line may end up a few bytes shorter than
/// `max`.
pub fn limit_line(line: &mut Text, max: usize, truncate: bool) -> LineLimit {
    if max == 0 || line.len() <= max {
        return LineLimit::Fits;
    }
    if !truncate {
        return LineLimit::TooLong;
    }
    let mut cut = max;
    while !line.is_char_boundary(cut) {
        cut -= 1;
    }
    let removed = line.len() - cut;
    line.truncate(cut);
    LineLimit::Truncated(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn limit_line_truncates_on_char_boundary_or_drops() {
        let mut s = Text::from("abcdef");
        assert_eq!(limit_line(&mut s, 0, true), LineLimit::Fits);
        assert_eq!(limit_line(&mut s, 6, false), LineLimit::Fits);
        assert_eq!(limit_line(&mut s, 5, false), LineLimit::TooLong);
        assert_eq!(s, "abcdef");
        assert_eq!(limit_line(&mut s, 4, true), LineLimit::Truncated(2));
        assert_eq!(s, "abcd");
        // "é" is 2 bytes, "€" 3: a cut at 4 would split the euro sign.
        let mut s = Text::from("aé€z");
        assert_eq!(limit_line(&mut s, 4, true), LineLimit::Truncated(4));
        assert_eq!(s, "aé");
        // A line shared with its read chunk is cut the same way.
        let chunk = crate::text::Chunk::new("aé€z\n".as_bytes());
        let mut s = chunk.line(0, 7).unwrap();
        assert_eq!(limit_line(&mut s, 4, true), LineLimit::Truncated(4));
        assert_eq!(s, "aé");
        let mut s = Text::from("€€");
        assert_eq!(limit_line(&mut s, 2, true), LineLimit::Truncated(6));
        assert_eq!(s, "");
    }

    #[test]
    fn a_route_shares_the_entrys_set_with_or_without_external_labels() {
        let ext: BTreeMap<String, String> = [("cluster".to_string(), "c".to_string())].into();
        for ext in [BTreeMap::new(), ext] {
            let mut r = Router::new(&ext, None);
            let public = LabelSet::new([("job", "a"), ("pod", "p")]);
            let i = r.route(&public).expect("routed");
            assert!(r.get(i).key.source().shares(&public), "no merged copy");
            let hidden = LabelSet::new([("job", "a"), ("__path__", "/x")]);
            let j = r.route(&hidden).expect("routed");
            assert!(r.get(j).key.source().shares(&hidden));
            let want = if ext.is_empty() {
                r#"{job="a"}"#
            } else {
                r#"{cluster="c", job="a"}"#
            };
            assert_eq!(r.get(j).key.render(), want);
        }
    }

    #[test]
    fn routes_merge_external_labels_and_pick_tenant() {
        let ext: BTreeMap<String, String> = [
            ("cluster".to_string(), "c1".to_string()),
            ("app".to_string(), "ext".to_string()),
        ]
        .into();
        let mut r = Router::new(&ext, Some("default"));
        let l = LabelSet::new([("app", "mine"), ("__path__", "/x"), ("empty", "")]);
        let i = r.route(&l).unwrap();
        let route = r.get(i).clone();
        assert_eq!(route.key.render(), r#"{app="mine", cluster="c1"}"#);
        assert_eq!(route.tenant.as_deref(), Some("default"));
        let l2 = l.with(TENANT_LABEL, "t2");
        let i2 = r.route(&l2).unwrap();
        let route2 = r.get(i2).clone();
        assert_eq!(route2.tenant.as_deref(), Some("t2"));
        assert_eq!(route2.key, route.key, "the tenant label is not sent");
        // Cached: the same route comes back.
        let again = r.route(&l).unwrap();
        assert_eq!(again, i);
    }

    #[test]
    fn each_set_gets_its_own_route_in_runs_in_turn_and_after_the_cache_is_cleared() {
        let none: BTreeMap<String, String> = BTreeMap::new();
        let mut r = Router::new(&none, None);
        let sets: Vec<LabelSet> = (0..CACHE_CAP + 3)
            .map(|i| LabelSet::new([("job", i.to_string())]))
            .collect();
        let dropped = LabelSet::new([("__path__", "/x")]);
        // Runs, single lines, an equal set made anew, an unroutable set
        // between two of a run, and every set once (the cache fills and
        // is cleared on the way).
        let order = [0, 0, 1, 0, 2, 2, 1]
            .into_iter()
            .chain(0..sets.len())
            .chain([1, 1, 0]);
        for (n, i) in order.enumerate() {
            let set = if n == 3 {
                LabelSet::new([("job", "0")])
            } else {
                sets[i].clone()
            };
            if n == 5 {
                assert!(r.route(&dropped).is_none());
            }
            let got = r.route(&set).expect("routed");
            assert_eq!(
                r.get(got).key.render(),
                format!("{{job=\"{i}\"}}"),
                "line {n}"
            );
        }
    }

    #[test]
    fn empty_public_labels_have_no_route_unless_external_labels_exist() {
        let none: BTreeMap<String, String> = BTreeMap::new();
        let mut r = Router::new(&none, None);
        let l = LabelSet::new([("__path__", "/x"), (TENANT_LABEL, "")]);
        assert!(r.route(&l).is_none());
        assert_eq!(r.tenant_of(&l), None);
        let ext: BTreeMap<String, String> = [("job".to_string(), "j".to_string())].into();
        let mut r = Router::new(&ext, Some(""));
        let i = r.route(&l).unwrap();
        let route = r.get(i);
        assert_eq!(route.key.render(), r#"{job="j"}"#);
        assert_eq!(route.tenant, None);
    }
}
