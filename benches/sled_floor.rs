//! The storage floor under the write benchmarks: what sled 0.34 itself costs per
//! acknowledged write with fieldsync's record layout, on one core, with no HTTP, JSON or
//! domain rules. `cargo bench --bench sled_floor` (env: WRITES=20000 CACHE_MB=4).
//!
//! An accepted status write inserts eight records in one transaction (op, lane entry,
//! change-log entry, timeline entry, route clock, device seq, audit entry, idempotency
//! record). The sizes below approximate those records' sealed sizes (33-byte header plus
//! JSON) for a status op with its answer. Where a record's key lands matters as much as its
//! size, so each record has a spread: how many places in its tree the writes go to, as in
//! the push benchmark (16 devices, 960 routes, 24,000 activities). Every layout runs on a
//! fresh database. See bench/README.md for how this bounds #5 and #6.
//!
//! The journal layouts are what the service writes now: one journal record per write (or
//! per 100-op batch) carrying those records' bytes, appended with one plain insert, then
//! the same records as plain index inserts; and the journal alone, the floor of a layout
//! whose projections all live in memory.

// A benchmark, not a request path: a failed setup or transaction should stop it loudly.
#![allow(clippy::expect_used)]

use sled::transaction::ConflictableTransactionError;
use sled::Transactional;
use std::time::Instant;

/// One record of a write: its tree, its sealed size, and how many insertion points its
/// keys spread over (0: one growing end, like a sequence).
#[derive(Clone, Copy)]
struct Record {
    tree: &'static str,
    size: usize,
    spread: u64,
}

const fn rec(tree: &'static str, size: usize, spread: u64) -> Record {
    Record { tree, size, spread }
}

/// What an accepted status write from a synced device writes today.
const SERVICE: [Record; 8] = [
    rec("ops", 800, 0),
    rec("lanes", 45, 960),
    rec("changes", 350, 16),
    rec("activity_ops", 45, 24_000),
    rec("route_clock", 70, 960),
    rec("device_seq", 45, 16),
    rec("audit", 450, 0),
    rec("idempotency", 1600, 16),
];

/// The same with only what each op needs on its own: the device seq, route clock and audit
/// entry written once per batch instead, the idempotency record reduced to the op's id.
const PER_OP_ONLY: [Record; 5] = [
    rec("ops", 800, 0),
    rec("lanes", 45, 960),
    rec("changes", 350, 16),
    rec("activity_ops", 45, 24_000),
    rec("idempotency", 300, 16),
];

/// A lower bound no real layout reaches: three small records, all appended at one end.
const APPEND_ONLY: [Record; 3] = [
    rec("ops", 400, 0),
    rec("lanes", 45, 0),
    rec("idempotency", 150, 0),
];

fn key(seq: u64, spread: u64) -> [u8; 16] {
    let point = match spread {
        0 => 0,
        n => seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) % n,
    };
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&point.to_be_bytes());
    k[8..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// A fresh database (kept alive by its directory), the layout's trees and one value each.
fn fresh(
    layout: &[Record],
    cache_mb: u64,
) -> (
    tempfile::TempDir,
    sled::Db,
    Vec<sled::Tree>,
    Vec<sled::IVec>,
) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = sled::Config::new()
        .path(dir.path())
        .cache_capacity(cache_mb << 20)
        .open()
        .expect("sled");
    let trees = layout
        .iter()
        .map(|r| db.open_tree(r.tree).expect("tree"))
        .collect();
    let values = layout
        .iter()
        .map(|r| sled::IVec::from(vec![b'x'; r.size]))
        .collect();
    (dir, db, trees, values)
}

fn run(label: &str, layout: &[Record], per_tx: u64, writes: u64, cache_mb: u64) {
    let (_dir, _db, trees, values) = fresh(layout, cache_mb);
    let refs: Vec<&sled::Tree> = trees.iter().collect();
    let started = Instant::now();
    for batch in 0..writes / per_tx {
        refs.as_slice()
            .transaction(|tx| {
                for w in 0..per_tx {
                    let seq = batch * per_tx + w;
                    for (i, r) in layout.iter().enumerate() {
                        tx[i].insert(&key(seq, r.spread), values[i].clone())?;
                    }
                }
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .expect("transaction");
    }
    let per_write = started.elapsed().as_secs_f64() * 1e6 / writes as f64;
    println!(
        "RESULT sled_floor {label}: {per_write:.1} us per write, {:.0} writes/s on one core (no flush)",
        1e6 / per_write
    );
}

/// When a journal layout writes its index records.
#[derive(Clone, Copy)]
enum Indexes {
    /// Never: the journal alone, the floor of projections kept only in memory.
    Never,
    /// Right after each journal record, as plain inserts.
    Inline,
    /// As the service's checkpoint does: every this many writes, all of their index records
    /// at once, sorted by tree and key (the overlay is a sorted map per tree).
    Checkpoint(u64),
}

/// The journal layout: per record, one appended journal value holding every index record of
/// its `per_record` writes, then its index records as `indexes` says. No sled transaction:
/// nothing here takes sled's process-wide lock.
fn run_journal(
    label: &str,
    layout: &[Record],
    per_record: u64,
    indexes: Indexes,
    writes: u64,
    cache_mb: u64,
) {
    let (_dir, db, trees, values) = fresh(layout, cache_mb);
    let journal = db.open_tree("journal").expect("tree");
    // Each effect carries its tree name and key besides the value (~30 bytes).
    let one_write: usize = layout.iter().map(|r| r.size + 30).sum();
    let record = sled::IVec::from(vec![b'j'; one_write * per_record as usize]);
    let started = Instant::now();
    let mut waiting: Vec<(usize, [u8; 16])> = Vec::new();
    for batch in 0..writes / per_record {
        journal
            .insert(batch.to_be_bytes(), record.clone())
            .expect("journal insert");
        for w in 0..per_record {
            let seq = batch * per_record + w;
            for (i, r) in layout.iter().enumerate() {
                match indexes {
                    Indexes::Never => {}
                    Indexes::Inline => {
                        trees[i]
                            .insert(key(seq, r.spread), values[i].clone())
                            .expect("index insert");
                    }
                    Indexes::Checkpoint(_) => waiting.push((i, key(seq, r.spread))),
                }
            }
        }
        let due = match indexes {
            Indexes::Checkpoint(every) => ((batch + 1) * per_record).is_multiple_of(every),
            _ => false,
        };
        if due || (batch + 1) * per_record >= writes {
            waiting.sort_unstable();
            waiting.dedup();
            for (i, k) in waiting.drain(..) {
                trees[i].insert(k, values[i].clone()).expect("index insert");
            }
        }
    }
    let per_write = started.elapsed().as_secs_f64() * 1e6 / writes as f64;
    println!(
        "RESULT sled_floor {label}: {per_write:.1} us per write, {:.0} writes/s on one core (no flush)",
        1e6 / per_write
    );
}

fn main() {
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (writes, cache_mb) = (env("WRITES", 20_000), env("CACHE_MB", 4));
    let layouts: [(&str, &[Record], u64); 6] = [
        (
            "8 records (the service's), 1 write per transaction",
            &SERVICE,
            1,
        ),
        (
            "8 records (the service's), 100 writes per transaction",
            &SERVICE,
            100,
        ),
        ("5 per-op records, 1 write per transaction", &PER_OP_ONLY, 1),
        (
            "5 per-op records, 100 writes per transaction",
            &PER_OP_ONLY,
            100,
        ),
        (
            "3 appended records, 1 write per transaction",
            &APPEND_ONLY,
            1,
        ),
        (
            "3 appended records, 100 writes per transaction",
            &APPEND_ONLY,
            100,
        ),
    ];
    for (label, layout, per_tx) in layouts {
        run(label, layout, per_tx, writes, cache_mb);
    }
    let journal: [(&str, u64, Indexes); 6] = [
        (
            "journal: 1 record + 8 plain index inserts per write",
            1,
            Indexes::Inline,
        ),
        (
            "journal: 1 record per 100-op batch + 8 plain index inserts per op",
            100,
            Indexes::Inline,
        ),
        (
            "journal: 1 record per write + checkpoint of sorted index inserts every 2,500 writes",
            1,
            Indexes::Checkpoint(2_500),
        ),
        (
            "journal: 1 record per 100-op batch + checkpoint every 2,500 ops",
            100,
            Indexes::Checkpoint(2_500),
        ),
        (
            "journal alone, 1 record per write (projections in memory)",
            1,
            Indexes::Never,
        ),
        (
            "journal alone, 1 record per 100-op batch",
            100,
            Indexes::Never,
        ),
    ];
    for (label, per_record, indexes) in journal {
        run_journal(label, &SERVICE, per_record, indexes, writes, cache_mb);
    }
}
