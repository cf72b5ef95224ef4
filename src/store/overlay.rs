//! The derived indexes' recent state, in memory: what journal records changed since the last
//! checkpoint. Readers see it over the index trees; the checkpoint moves it into them.
//!
//! Why: keeping eight index trees current on every write cost ~180 µs of sled tree walks, page
//! reads and node splits per write (bench/README.md), several times the journal append
//! itself. Here a write's effects are a few map inserts; a checkpoint later writes each key
//! once, in key order, however many records changed it meanwhile.
//!
//! Rules that keep it exact:
//! - a slot holds the last value a journal record gave a key, or its removal;
//! - a checkpoint first takes the journal's applied watermark `W`, then lists the slots: every
//!   record at or below `W` finished applying before the listing, so its effects (or later
//!   ones over them) are listed. It writes each listed key's current slot to its tree, then
//!   drops the slot unless a record changed it meanwhile, then persists `W` with a flush: on
//!   open, the records past `W` are applied again, in order;
//! - a slot leaves only after its value is in the tree, so a reader never finds a key in
//!   neither place; readers wait only for map operations, never for a sled write;
//! - every sled write to an overlaid tree (a checkpoint's chunk, or a plain write outside the
//!   journal) holds that tree's writer lock, so no older value lands over a newer one.

use super::journal::{self, Effect};
use super::{StoreError, Tree};
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// A key's state since the last checkpoint: its value, or `None` once removed.
type Slot = Option<Vec<u8>>;
type Map = BTreeMap<Vec<u8>, Slot>;

/// One tree's slots, and the lock its sled writers hold.
#[derive(Debug, Default)]
pub struct ShardState {
    map: RwLock<Map>,
    writer: Mutex<()>,
}
pub type Shard = Arc<ShardState>;

/// What the overlay knows of a key.
pub enum Look {
    /// Set since the checkpoint.
    Value(Vec<u8>),
    /// Removed since the checkpoint (the tree may still hold an older value).
    Removed,
    /// Not touched since the checkpoint: the tree is right.
    Unknown,
}

/// Reads a key's value in its tree.
pub type StoredValue<'a> = dyn Fn(Tree, &[u8]) -> Result<Option<Vec<u8>>, StoreError> + 'a;
/// A tree's records as a scan yields them.
pub type Records<'a> = dyn Iterator<Item = Result<(Vec<u8>, Vec<u8>), StoreError>> + 'a;

/// The overlay of every tree a journal record touched.
#[derive(Debug, Default)]
pub struct Overlay {
    trees: RwLock<HashMap<&'static str, Shard>>,
    slots: AtomicUsize,
}

pub fn read(shard: &Shard) -> RwLockReadGuard<'_, Map> {
    shard.map.read().unwrap_or_else(|p| p.into_inner())
}

pub fn write(shard: &Shard) -> RwLockWriteGuard<'_, Map> {
    shard.map.write().unwrap_or_else(|p| p.into_inner())
}

/// Held by whoever writes the tree's sled records (see the module's rules).
pub fn writer(shard: &Shard) -> MutexGuard<'_, ()> {
    shard.writer.lock().unwrap_or_else(|p| p.into_inner())
}

impl Overlay {
    /// The tree's shard, if a journal record ever touched it in this process.
    pub fn shard(&self, tree: Tree) -> Option<Shard> {
        let g = self.trees.read().unwrap_or_else(|p| p.into_inner());
        g.get(tree.0).cloned()
    }

    fn shard_or_new(&self, tree: Tree) -> Shard {
        if let Some(s) = self.shard(tree) {
            return s;
        }
        let mut g = self.trees.write().unwrap_or_else(|p| p.into_inner());
        g.entry(tree.0).or_default().clone()
    }

    /// How many keys wait for a checkpoint.
    pub fn len(&self) -> usize {
        self.slots.load(Ordering::Relaxed)
    }

    pub fn look(&self, tree: Tree, key: &[u8]) -> Look {
        let Some(shard) = self.shard(tree) else {
            return Look::Unknown;
        };
        let g = read(&shard);
        match g.get(key) {
            Some(Some(v)) => Look::Value(v.clone()),
            Some(None) => Look::Removed,
            None => Look::Unknown,
        }
    }

    /// Applies one record's effects. `stored` reads a key's value in its tree (for a raise
    /// over a key the overlay does not hold); it is called under the shard's write lock.
    pub fn apply(&self, effects: &[Effect], stored: &StoredValue<'_>) -> Result<(), StoreError> {
        for e in effects {
            let Some((tree, key)) = e.target() else {
                continue;
            };
            let shard = self.shard_or_new(tree);
            let mut g = write(&shard);
            let value = match e {
                Effect::Put { value, .. } => Some(value.clone()),
                Effect::Remove { .. } => None,
                Effect::Raise { tree, key, value } => {
                    let current = match g.get(key.as_slice()) {
                        Some(slot) => slot.clone(),
                        None => stored(*tree, key)?,
                    };
                    if !journal::outranks(value, current.as_deref()) {
                        continue;
                    }
                    Some(value.clone())
                }
                Effect::Count(_) | Effect::Recount => continue,
            };
            if g.insert(key.to_vec(), value).is_none() {
                self.slots.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// The shards with their keys, for a checkpoint (see the module's rules).
    pub fn listing(&self) -> Vec<(Tree, Shard, Vec<Vec<u8>>)> {
        let shards: Vec<(&'static str, Shard)> = {
            let g = self.trees.read().unwrap_or_else(|p| p.into_inner());
            g.iter().map(|(n, s)| (*n, s.clone())).collect()
        };
        shards
            .into_iter()
            .map(|(name, shard)| {
                let keys = read(&shard).keys().cloned().collect();
                (Tree(name), shard, keys)
            })
            .collect()
    }

    /// Notes that `n` slots left for their tree.
    pub fn settled(&self, n: usize) {
        self.slots.fetch_sub(n, Ordering::Relaxed);
    }
}

/// The overlay's entries of a range in key order, for a scan to merge over its tree: entries
/// whose key starts with `prefix`, from `from` (inclusive) upwards, or below `before`
/// downwards when `rev`. It stops once it holds `live` entries that are not removals: a scan
/// of at most `live` results needs nothing past them.
pub fn range(
    map: &Map,
    prefix: &[u8],
    from: &[u8],
    before: Option<&[u8]>,
    rev: bool,
    live: usize,
) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    let mut seen = 0;
    let mut take = |(k, slot): (&Vec<u8>, &Slot)| {
        out.push((k.clone(), slot.clone()));
        if slot.is_some() {
            seen += 1;
        }
        seen < live
    };
    if rev {
        let upper = match before {
            Some(b) => Bound::Excluded(b.to_vec()),
            None => Bound::Unbounded,
        };
        for item in map.range((Bound::Unbounded, upper)).rev() {
            if !take(item) {
                break;
            }
        }
    } else {
        for item in map.range(from.to_vec()..) {
            if !item.0.starts_with(prefix) || !take(item) {
                break;
            }
        }
    }
    out
}

/// Merges a tree's records (in scan order) with the overlay's entries of the same range
/// (from [`range`]): an overlay entry replaces or hides the tree's record of its key.
pub fn merge(
    overlay: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    tree: &mut Records<'_>,
    rev: bool,
    limit: usize,
) -> Result<super::RawPairs, StoreError> {
    let before = |a: &[u8], b: &[u8]| if rev { a > b } else { a < b };
    let mut out = Vec::new();
    let mut over = overlay.into_iter().peekable();
    let mut next = tree.next().transpose()?;
    while out.len() < limit {
        let take_overlay = match (over.peek(), &next) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((ok, _)), Some((tk, _))) => {
                if ok == tk {
                    next = tree.next().transpose()?;
                    true
                } else {
                    before(ok, tk)
                }
            }
        };
        if take_overlay {
            if let Some((k, Some(v))) = over.next() {
                out.push((k, v));
            }
        } else if let Some(pair) = next.take() {
            out.push(pair);
            next = tree.next().transpose()?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, Option<&str>)]) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        v.iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.map(|v| v.as_bytes().to_vec())))
            .collect()
    }

    fn tree(v: &[(&str, &str)]) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), StoreError>> {
        v.iter()
            .map(|(k, v)| Ok((k.as_bytes().to_vec(), v.as_bytes().to_vec())))
            .collect::<Vec<_>>()
            .into_iter()
    }

    fn keys(r: &super::super::RawPairs) -> Vec<String> {
        r.iter()
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    String::from_utf8_lossy(k),
                    String::from_utf8_lossy(v)
                )
            })
            .collect()
    }

    #[test]
    fn the_overlay_replaces_and_hides_the_trees_records_in_key_order() {
        let over = pairs(&[("b", Some("B2")), ("c", None), ("e", Some("E"))]);
        let t = || tree(&[("a", "A"), ("b", "B"), ("c", "C"), ("d", "D")]);
        let got = merge(over.clone(), &mut t(), false, 10).unwrap();
        assert_eq!(keys(&got), ["a=A", "b=B2", "d=D", "e=E"]);
        let got = merge(over, &mut t(), false, 2).unwrap();
        assert_eq!(keys(&got), ["a=A", "b=B2"]);
    }

    #[test]
    fn a_reverse_merge_runs_from_the_top() {
        let over = pairs(&[("e", Some("E")), ("c", None), ("b", Some("B2"))]);
        let mut t = tree(&[("d", "D"), ("c", "C"), ("b", "B"), ("a", "A")]);
        let got = merge(over, &mut t, true, 3).unwrap();
        assert_eq!(keys(&got), ["e=E", "d=D", "b=B2"]);
    }

    #[test]
    fn a_range_stops_after_enough_live_entries_and_keeps_to_its_prefix() {
        let mut m = Map::new();
        for (k, v) in [
            ("p1", Some("1")),
            ("p2", None),
            ("p3", Some("3")),
            ("q1", Some("x")),
        ] {
            m.insert(k.as_bytes().to_vec(), v.map(|v| v.as_bytes().to_vec()));
        }
        let r = range(&m, b"p", b"p", None, false, 10);
        assert_eq!(r.len(), 3, "removals kept, the other prefix left out");
        let r = range(&m, b"p", b"p", None, false, 1);
        assert_eq!(r.len(), 1);
        let r = range(&m, b"", b"", Some(b"p3"), true, 10);
        assert_eq!(r.len(), 2, "below p3, downwards");
    }

    #[test]
    fn raises_keep_the_higher_value_across_the_overlay_and_the_tree() {
        let o = Overlay::default();
        let t = Tree("t");
        let sealed = |n: u64| crate::store::record::seal(&n).unwrap();
        let stored = |_: Tree, _: &[u8]| Ok(Some(sealed(7)));
        let raise = |n: u64| Effect::Raise {
            tree: t,
            key: b"k".to_vec(),
            value: sealed(n),
        };
        o.apply(&[raise(5)], &stored).unwrap();
        assert!(
            matches!(o.look(t, b"k"), Look::Unknown),
            "7 in the tree wins"
        );
        o.apply(&[raise(9)], &stored).unwrap();
        o.apply(&[raise(8)], &stored).unwrap();
        match o.look(t, b"k") {
            Look::Value(v) => assert_eq!(v, sealed(9)),
            _ => panic!("the raise to 9 is in the overlay"),
        }
        assert_eq!(o.len(), 1);
    }
}
