//! `fieldsync check`'s core: every index entry the retained journal owns rebuilt and
//! compared with the stored one, and every checksum verified.

use super::read_range;
use super::wire::{outranks, Effect};
use crate::store::{record, Storage, StoreError, Tree};
use std::collections::BTreeMap;

/// What `fieldsync check` found.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Report {
    pub records: u64,
    pub corrupt: Vec<String>,
    /// (tree, key hex, what differs) for index entries that disagree with the journal.
    pub differences: Vec<(String, String, String)>,
    pub keys_checked: u64,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.corrupt.is_empty() && self.differences.is_empty()
    }
}

/// What `check` expects of a key: a small value whole (high-water marks are ranked), a large
/// one by its seal's version and SHA-256, so a million ops' rebuild fits in memory.
enum Want {
    Whole(Vec<u8>),
    Sealed([u8; 33]),
}

impl Want {
    fn of(value: Vec<u8>) -> Want {
        match value.get(..33).and_then(|h| <[u8; 33]>::try_from(h).ok()) {
            Some(head) if value.len() > 128 => Want::Sealed(head),
            _ => Want::Whole(value),
        }
    }
    fn matches(&self, have: &[u8]) -> bool {
        match self {
            Want::Whole(v) => v.as_slice() == have,
            // The stored record's own checksum is verified below, so its seal names its bytes.
            Want::Sealed(head) => have.len() > 128 && have.get(..33) == Some(head.as_slice()),
        }
    }
}

/// Rebuilds, from the journal, every entry of the `owned` trees (written only through the
/// journal) that the retained journal touches, and compares it with what the index holds;
/// verifies every journal record's checksum, and every record of the owned trees'.
pub fn check(store: &dyn Storage, owned: &[Tree]) -> Result<Report, StoreError> {
    check_with(store, owned, &mut |_, _, _| {})
}

/// What [`check_with`] hands each index record it reads: its tree, key and sealed value.
pub type Observe<'a> = &'a mut dyn FnMut(Tree, &[u8], &[u8]);

/// [`check`], handing `observe` every index record its verification pass reads (so a caller
/// can check what it derives from them without reading the trees again).
pub fn check_with(
    store: &dyn Storage,
    owned: &[Tree],
    observe: Observe<'_>,
) -> Result<Report, StoreError> {
    let mut report = Report::default();
    let mut rebuilt: BTreeMap<(&'static str, Vec<u8>), Option<Want>> = BTreeMap::new();
    let mut next = 0;
    loop {
        let batch = read_range(store, next, 512)?;
        let Some(&(seq_last, _)) = batch.last() else {
            break;
        };
        for (seq, entry) in batch {
            report.records += 1;
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    report.corrupt.push(format!("journal record {seq}: {e}"));
                    continue;
                }
            };
            for e in entry.effects {
                let slot = match e.target() {
                    Some((tree, key)) if owned.contains(&tree) => {
                        rebuilt.entry((tree.0, key.to_vec())).or_insert(None)
                    }
                    _ => continue,
                };
                match e {
                    Effect::Put { value, .. } => *slot = Some(Want::of(value)),
                    Effect::Remove { .. } => *slot = None,
                    Effect::Raise { value, .. } => {
                        let higher = match slot {
                            Some(Want::Whole(old)) => outranks(&value, Some(old)),
                            // A high-water mark over a large value: nothing to rank against.
                            Some(Want::Sealed(_)) | None => true,
                        };
                        if higher {
                            *slot = Some(Want::of(value));
                        }
                    }
                    Effect::Count(_) | Effect::Recount => {}
                }
            }
        }
        next = seq_last + 1;
    }
    // One ordered pass per tree does both jobs: each stored record's checksum is verified,
    // and the rebuilt entries of that tree are merged against the records in key order (a
    // lookup per rebuilt key, a million ops' worth, was most of check's time).
    for tree in owned {
        let mut wants = rebuilt
            .range((tree.0, Vec::new())..)
            .take_while(|((t, _), _)| *t == tree.0)
            .map(|((_, k), w)| (k, w))
            .peekable();
        let mut compare = |key: &[u8], want: Option<&Want>, have: Option<&[u8]>| {
            report.keys_checked += 1;
            let differs = match (want, have) {
                (Some(w), Some(h)) if w.matches(h) => None,
                (None, None) => None,
                (Some(_), Some(_)) => Some("value differs from the journal's"),
                (Some(_), None) => Some("missing from the index"),
                (None, Some(_)) => Some("in the index, but the journal removed it"),
            };
            if let Some(d) = differs {
                report
                    .differences
                    .push((tree.0.to_string(), hex::encode(key), d.to_string()));
            }
        };
        let mut corrupt = Vec::new();
        crate::store::scan_pages(store, *tree, b"", 1024, &mut |k, v| {
            if let Err(e) = record::open::<serde::de::IgnoredAny>(*tree, k, v) {
                corrupt.push(e.to_string());
            }
            // Rebuilt keys before this record are not stored.
            while let Some((wk, w)) = wants.next_if(|(wk, _)| wk.as_slice() < k) {
                compare(wk, w.as_ref(), None);
            }
            if let Some((wk, w)) = wants.next_if(|(wk, _)| wk.as_slice() == k) {
                compare(wk, w.as_ref(), Some(v));
            }
            observe(*tree, k, v);
            Ok(true)
        })?;
        for (wk, w) in wants {
            compare(wk, w.as_ref(), None);
        }
        report.corrupt.extend(corrupt);
    }
    Ok(report)
}
