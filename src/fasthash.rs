//! Hashing for the agent's own keys: paths, file identities, and keys that
//! are hashes already.
//!
//! Owns: the hasher choices for maps keyed by what the file system names
//! (a path, a `(device, inode)` pair) and for the 64-bit path hashes the
//! directory walk keys its sets by. At 5,000 files a rescan looks up ~15,000
//! paths, and std's SipHash over a path was a third of the tailer's
//! instructions at start-up and in an idle rescan (callgrind, 2026-12-07):
//! foldhash does the same work in a fraction of the instructions.
//!
//! foldhash is seeded per process, like std's `RandomState`: it is not a
//! cryptographic hash, but without the seed nobody can pick paths that
//! collide (pod and namespace names are chosen by whoever may create pods).
//! [`KeyHasher`] passes a key that is already a hash through unchanged.
//!
//! Must never: be used for anything an attacker could see the hashes of, or
//! where a collision would be a wrong answer rather than a slower lookup
//! (except `source::expand::path_key`'s documented 64-bit identity).

use std::collections::{HashMap, HashSet};

/// For maps keyed by paths and file identities (equality decides; the hash
/// only spreads).
pub type Fast = foldhash::fast::RandomState;

/// For a 64-bit hash that stands for a path by itself (the walk's sets):
/// foldhash's stronger finish, so that the 64 bits are well mixed.
pub type Quality = foldhash::quality::RandomState;

/// A map hashed by [`Fast`].
pub type FastMap<K, V> = HashMap<K, V, Fast>;

/// A set hashed by [`Fast`].
pub type FastSet<K> = HashSet<K, Fast>;

/// For keys that are hashes already (a [`Quality`] path hash): used as is.
pub type KeyHasher = std::hash::BuildHasherDefault<crate::labels::PassThrough>;

/// A map keyed by a hash.
pub type KeyMap<V> = HashMap<u64, V, KeyHasher>;

/// A set of hashes.
pub type KeySet = HashSet<u64, KeyHasher>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher as _;

    #[test]
    fn a_key_set_passes_a_hash_through_and_tells_keys_apart() {
        let h = Quality::default();
        let a = h.hash_one(b"/var/log/pods/a".as_slice());
        let b = h.hash_one(b"/var/log/pods/b".as_slice());
        assert_ne!(a, b);
        assert_eq!(KeyHasher::default().hash_one(a), a);
        let set: KeySet = [a, b].into_iter().collect();
        assert!(set.contains(&a) && set.contains(&b) && set.len() == 2);
    }

    #[test]
    fn a_fast_map_finds_paths_by_equality() {
        let mut m: FastMap<std::sync::Arc<std::path::Path>, u32> = FastMap::default();
        m.insert(std::path::Path::new("/var/log/pods/x/c/0.log").into(), 7);
        assert_eq!(
            m.get(std::path::Path::new("/var/log/pods/x/c/0.log")),
            Some(&7)
        );
        assert_eq!(m.get(std::path::Path::new("/var/log/pods/x/c/1.log")), None);
    }
}
