//! A journal record's stored form: its effects on the derived indexes, in parts of about
//! 4 KiB (key: sequence, part), each sealed with its own checksum.

use super::JOURNAL;
use crate::store::tally::Shift;
use crate::store::{record, StoreError, Tree};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::Mutex;

/// Journal records' envelope version (index records use [`record`]'s JSON version 1).
const ENTRY_VERSION: u8 = 2;
/// A record is stored in parts of about this many bytes (key: sequence, part). sled 0.34
/// writes anything over ~128 KiB (a value, or a leaf node of up to 17 of them) to a blob file
/// of its own, a file per write that its flush does not even sync; 4 KiB parts keep journal
/// leaves well under that, so a 100-op batch is ~90 small inserts, not one blob.
const PART_BYTES: usize = 4096;

/// The key of one part of a record.
pub fn part_key(seq: u64, part: u16) -> [u8; 10] {
    let mut k = [0u8; 10];
    k[..8].copy_from_slice(&seq.to_be_bytes());
    k[8..].copy_from_slice(&part.to_be_bytes());
    k
}

pub(super) fn seq_of(key: &[u8]) -> Option<u64> {
    key.get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
}

/// One change to a derived index tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Put {
        tree: Tree,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Remove {
        tree: Tree,
        key: Vec<u8>,
    },
    /// Put unless the stored value already ranks at or above this one (see [`rank`]): a
    /// high-water mark, which commutes with concurrent raises.
    Raise {
        tree: Tree,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    /// A record moving between the live counts' classes ([`crate::store::tally`]): no tree.
    Count(Shift),
    /// A change no [`Effect::Count`] describes (an op dropped unread): the counts must be
    /// rebuilt from the ops.
    Recount,
}

impl Effect {
    /// The index tree and key it changes (`None` for the counts' effects).
    pub fn target(&self) -> Option<(Tree, &[u8])> {
        match self {
            Effect::Put { tree, key, .. }
            | Effect::Remove { tree, key }
            | Effect::Raise { tree, key, .. } => Some((*tree, key)),
            Effect::Count(_) | Effect::Recount => None,
        }
    }
}

/// A decoded journal record.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub seq: u64,
    /// What happened (`write.status`, `op.applied`, `op.retry`...), for operators and `check`.
    pub what: String,
    pub at_ms: i64,
    /// The ops this record creates or moves (compaction keeps it while one is open).
    pub ops: Vec<u64>,
    pub effects: Vec<Effect>,
}

/// The wire form: tree names as strings, binary (postcard) inside a checksummed envelope.
#[derive(Serialize, Deserialize)]
struct Wire {
    what: String,
    at_ms: i64,
    /// This part's index, and how many parts the record has.
    part: u16,
    parts: u16,
    ops: Vec<u64>,
    effects: Vec<WireEffect>,
}

#[derive(Serialize, Deserialize)]
enum WireEffect {
    Put(String, Vec<u8>, Vec<u8>),
    Remove(String, Vec<u8>),
    Raise(String, Vec<u8>, Vec<u8>),
    // Layout 3 on: new variants go last, so records of older layouts still decode.
    Count(Shift),
    Recount,
}

/// Maps a stored tree name back to a [`Tree`]. Names are interned once each: the set of
/// trees is small and fixed in code.
pub fn tree_named(name: &str) -> Tree {
    static NAMES: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let mut g = NAMES.lock().unwrap_or_else(|p| p.into_inner());
    let set = g.get_or_insert_with(HashSet::new);
    if let Some(n) = set.get(name) {
        return Tree(n);
    }
    let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
    set.insert(leaked);
    Tree(leaked)
}

fn wire_effect(e: &Effect) -> WireEffect {
    match e {
        Effect::Put { tree, key, value } => {
            WireEffect::Put(tree.0.into(), key.clone(), value.clone())
        }
        Effect::Remove { tree, key } => WireEffect::Remove(tree.0.into(), key.clone()),
        Effect::Raise { tree, key, value } => {
            WireEffect::Raise(tree.0.into(), key.clone(), value.clone())
        }
        Effect::Count(s) => WireEffect::Count(s.clone()),
        Effect::Recount => WireEffect::Recount,
    }
}

fn effect_of(e: WireEffect) -> Effect {
    match e {
        WireEffect::Put(t, key, value) => Effect::Put {
            tree: tree_named(&t),
            key,
            value,
        },
        WireEffect::Remove(t, key) => Effect::Remove {
            tree: tree_named(&t),
            key,
        },
        WireEffect::Raise(t, key, value) => Effect::Raise {
            tree: tree_named(&t),
            key,
            value,
        },
        WireEffect::Count(s) => Effect::Count(s),
        WireEffect::Recount => Effect::Recount,
    }
}

fn effect_len(e: &Effect) -> usize {
    match e {
        Effect::Put { key, value, .. } | Effect::Raise { key, value, .. } => {
            key.len() + value.len() + 24
        }
        Effect::Remove { key, .. } => key.len() + 24,
        Effect::Count(s) => s.group.len() + 24,
        Effect::Recount => 1,
    }
}

/// Encodes a record as its parts (at least one), each sealed with its own checksum. An
/// effect is never split; one larger than a part gets a part of its own.
pub fn encode(entry: &Entry) -> Result<Vec<Vec<u8>>, StoreError> {
    let mut groups: Vec<Vec<WireEffect>> = vec![Vec::new()];
    let mut size = 0;
    for e in &entry.effects {
        let len = effect_len(e);
        if size + len > PART_BYTES && !groups.last().is_none_or(Vec::is_empty) {
            groups.push(Vec::new());
            size = 0;
        }
        size += len;
        if let Some(g) = groups.last_mut() {
            g.push(wire_effect(e));
        }
    }
    let parts = u16::try_from(groups.len())
        .map_err(|_| StoreError::Encode("a journal record of over 65,535 parts".into()))?;
    groups
        .into_iter()
        .enumerate()
        .map(|(i, effects)| {
            let wire = Wire {
                what: entry.what.clone(),
                at_ms: entry.at_ms,
                part: i as u16,
                parts,
                ops: if i == 0 {
                    entry.ops.clone()
                } else {
                    Vec::new()
                },
                effects,
            };
            let body = postcard::to_stdvec(&wire).map_err(|e| StoreError::Encode(e.to_string()))?;
            Ok(record::seal_bytes(ENTRY_VERSION, &body))
        })
        .collect()
}

fn decode_part(key: &[u8], bytes: &[u8]) -> Result<Wire, StoreError> {
    let body = record::open_bytes(JOURNAL, key, ENTRY_VERSION, bytes)?;
    postcard::from_bytes(body).map_err(|e| StoreError::Corrupt {
        tree: JOURNAL.0,
        key: hex::encode(key),
        reason: format!("undecodable journal record: {e}"),
    })
}

/// Assembles a record from its parts (key, value), in part order. Every part must verify,
/// and all of them must be there: a record missing its last parts was torn by a crash.
pub fn decode(seq: u64, parts: &[(Vec<u8>, Vec<u8>)]) -> Result<Entry, StoreError> {
    let torn = |reason: String| StoreError::Corrupt {
        tree: JOURNAL.0,
        key: hex::encode(seq.to_be_bytes()),
        reason,
    };
    let mut entry = Entry {
        seq,
        what: String::new(),
        at_ms: 0,
        ops: Vec::new(),
        effects: Vec::new(),
    };
    let mut expected = None;
    for (i, (key, value)) in parts.iter().enumerate() {
        let wire = decode_part(key, value)?;
        if usize::from(wire.part) != i || expected.is_some_and(|n| n != wire.parts) {
            return Err(torn(format!("part {i} of the record is out of place")));
        }
        expected = Some(wire.parts);
        if i == 0 {
            entry.what = wire.what;
            entry.at_ms = wire.at_ms;
            entry.ops = wire.ops;
        }
        entry
            .effects
            .extend(wire.effects.into_iter().map(effect_of));
    }
    match expected {
        Some(n) if usize::from(n) == parts.len() => Ok(entry),
        Some(n) => Err(torn(format!(
            "torn record: {} of its {n} parts are stored",
            parts.len()
        ))),
        None => Err(torn("a record without parts".into())),
    }
}

/// The order of a high-water value: a JSON integer, or an RFC 3339 instant (nanoseconds).
/// Anything else ranks lowest, so a raise always replaces it.
pub fn rank(sealed: &[u8]) -> Option<i128> {
    let payload = sealed.get(33..)?;
    match serde_json::from_slice::<serde_json::Value>(payload).ok()? {
        serde_json::Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from)),
        serde_json::Value::String(s) => chrono::DateTime::parse_from_rfc3339(&s)
            .ok()
            .and_then(|t| t.timestamp_nanos_opt())
            .map(i128::from),
        _ => None,
    }
}

pub(crate) fn outranks(new: &[u8], old: Option<&[u8]>) -> bool {
    match old {
        None => true,
        Some(old) => rank(new) > rank(old),
    }
}
