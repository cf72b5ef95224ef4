//! The storage floor under the write benchmarks: what sled 0.34 itself costs per
//! acknowledged write with fieldsync's record layout, on one core, with no HTTP, JSON or
//! domain rules. `cargo bench --bench sled_floor` (env: WRITES=20000 CACHE_MB=4).
//!
//! An accepted status write inserts eight records in one transaction (op, lane entry,
//! change-log entry, timeline entry, route clock, device seq, audit entry, idempotency
//! record). The sizes below approximate those records' sealed sizes (33-byte header plus
//! JSON) for a status op with its answer. See bench/README.md for how this bounds #5/#6.

// A benchmark, not a request path: a failed setup or transaction should stop it loudly.
#![allow(clippy::expect_used)]

use sled::transaction::ConflictableTransactionError;
use sled::Transactional;
use std::time::Instant;

/// (tree, approximate sealed value size in bytes, key is sequential?)
const LAYOUT: [(&str, usize, bool); 8] = [
    ("ops", 800, true),
    ("lanes", 45, true),
    ("changes", 350, true),
    ("activity_ops", 45, false),
    ("route_clock", 70, false),
    ("device_seq", 45, false),
    ("audit", 450, true),
    ("idempotency", 1600, false),
];

fn key(seq: u64, sequential: bool) -> [u8; 8] {
    // Random-ish keys for trees keyed by activity, route, device or idempotency key.
    let k = if sequential {
        seq
    } else {
        seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) % 1_000_003
    };
    k.to_be_bytes()
}

fn run(
    label: &str,
    trees: &[sled::Tree],
    layout: &[(&str, usize, bool)],
    per_tx: u64,
    writes: u64,
    base: u64,
) {
    let refs: Vec<&sled::Tree> = trees.iter().collect();
    let values: Vec<Vec<u8>> = layout
        .iter()
        .map(|(_, size, _)| vec![b'x'; *size])
        .collect();
    let started = Instant::now();
    for batch in 0..writes / per_tx {
        refs.as_slice()
            .transaction(|tx| {
                for w in 0..per_tx {
                    let seq = base + batch * per_tx + w;
                    for (i, (_, _, sequential)) in layout.iter().enumerate() {
                        tx[i].insert(&key(seq, *sequential), values[i].clone())?;
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

fn main() {
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (writes, cache_mb) = (env("WRITES", 20_000), env("CACHE_MB", 4));
    let dir = tempfile::tempdir().expect("temp dir");
    let db = sled::Config::new()
        .path(dir.path())
        .cache_capacity(cache_mb << 20)
        .open()
        .expect("sled");
    let trees: Vec<sled::Tree> = LAYOUT
        .iter()
        .map(|(name, _, _)| db.open_tree(name).expect("tree"))
        .collect();
    run(
        "8 records, 1 write per transaction",
        &trees,
        &LAYOUT,
        1,
        writes,
        0,
    );
    run(
        "8 records, 100 writes per transaction",
        &trees,
        &LAYOUT,
        100,
        writes,
        10_000_000,
    );
    let lean: Vec<_> = [0, 7, 1].iter().map(|i| LAYOUT[*i]).collect();
    let lean_trees: Vec<sled::Tree> = [0, 7, 1].iter().map(|i| trees[*i].clone()).collect();
    run(
        "3 records (op, idempotency, lane), 1 write per transaction",
        &lean_trees,
        &lean,
        1,
        writes,
        20_000_000,
    );
}
