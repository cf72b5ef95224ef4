//! The store's offline commands: `check`, `prune`, `rewrite` and `load`.

use super::Outcome;
use crate::bulk_load::{self, Backlog};
use crate::config::HistorySettings;
use crate::features::approvals::PendingFloor;
use crate::store::journal::{self, Converted};
use crate::store::{checkpointer, SledStore, Storage};
use crate::write::outbox::{self, history};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

/// `fieldsync check`: opens the store as a start would (bringing the indexes up to the
/// journal), verifies every checksum, rebuilds every journal-owned index and compares.
pub fn check(dir: &Path) -> Result<Outcome, String> {
    if !dir.join("db").exists() {
        return Err(format!("check: no fieldsync data in {}", dir.display()));
    }
    let started = Instant::now();
    let store =
        SledStore::open(dir).map_err(|e| format!("check: cannot open {}: {e}", dir.display()))?;
    let recovered = store.recovery().clone();
    let report = outbox::check(&store).map_err(|e| format!("check: {e}"))?;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "journal: {} records (last seq {}); {} re-applied and {} quarantined on open{}",
        report.records,
        recovered.last,
        recovered.reapplied,
        recovered.quarantined,
        match recovered.converted {
            Some(Converted::PreJournal) => "; converted from the pre-journal layout",
            Some(Converted::Layout2) => "; converted from layout 2",
            None => "",
        },
    );
    let _ = writeln!(
        text,
        "op counts: {}",
        if store.tally().known() {
            "the checkpoint's, brought up to the journal, compared with a count of the ops"
        } else {
            "not checkpointed (the next start counts every op)"
        }
    );
    let _ = writeln!(
        text,
        "indexes: {} keys rebuilt from the journal and compared",
        report.keys_checked
    );
    for c in &report.corrupt {
        let _ = writeln!(text, "corrupt: {c}");
    }
    for (tree, key, what) in &report.differences {
        let _ = writeln!(text, "differs: {tree} {key}: {what}");
    }
    let _ = writeln!(text, "took {:.2}s", started.elapsed().as_secs_f64());
    let ok = report.is_clean();
    if ok {
        text.push_str("ok\n");
    } else {
        let _ = writeln!(
            text,
            "FAILED: {} corrupt, {} differences",
            report.corrupt.len(),
            report.differences.len()
        );
    }
    Ok(Outcome { text, ok })
}

/// `fieldsync prune`: removes the history past its retention now, as the service's task
/// does. An explicit `older_than_days` of 0 means everything finished until now; a
/// configured `retention_days` of 0 keeps the history.
pub fn prune(
    dir: &Path,
    older_than_days: Option<u32>,
    settings: &HistorySettings,
) -> Result<Outcome, String> {
    let days = older_than_days.or(Some(settings.retention_days).filter(|d| *d > 0));
    let audit_days = settings.audit_retention_days;
    if days.is_none() && audit_days == 0 {
        return Ok(Outcome::ok(
            "history.retention_days and audit_retention_days are 0: history is kept\n".into(),
        ));
    }
    let started = Instant::now();
    let now = chrono::Utc::now();
    let ago = |d: u32| now - chrono::Duration::days(i64::from(d));
    let before = history::Cutoff {
        history: days.map_or(chrono::DateTime::<chrono::Utc>::MIN_UTC, ago),
        audit: (audit_days > 0).then(|| ago(audit_days)),
    };
    let age = days.map_or("(the history is kept)".to_string(), |d| {
        format!("older than {d} days")
    });
    let floor = PendingFloor::default();
    let result = SledStore::open(dir).and_then(|store| {
        outbox::count_if_unknown(&store)?;
        // As the service's checkpoint thread would.
        let whole = history::Pace::whole();
        let done = history::prune_all(&store, before, &floor, &whole, history::PASS, &mut |_| {
            if store.unchecked() >= checkpointer::DUE_KEYS {
                store.checkpoint()?;
            }
            Ok(())
        })?;
        store.flush_blocking()?;
        store.checkpoint()?;
        // As the service would within seconds: records whose ops are all finished (or
        // pruned) leave the journal.
        let compacted = journal::compact(
            &store,
            store.journal(),
            &|e| outbox::settled(&store, e),
            usize::MAX,
        )?;
        Ok((done, compacted))
    });
    let (p, compacted) = result.map_err(|e| format!("prune failed: {e}"))?;
    Ok(Outcome::ok(format!(
        "pruned {} ops, {} change-log entries and {} idempotency records {age}, and {} audit entries (audit retention: {audit_days} days, 0 keeps them), compacted {compacted} journal records, in {:.1?}\n",
        p.ops,
        p.changes,
        p.idempotency,
        p.audit,
        started.elapsed()
    )))
}

/// `fieldsync rewrite`: copies the store into `to` (which must not exist), leaving behind
/// the space sled 0.34 keeps for removed records.
pub fn rewrite(dir: &Path, to: &Path) -> Result<Outcome, String> {
    let started = Instant::now();
    // A small page cache, as the service's: the copy reads every record once.
    let store = SledStore::open_with_cache(dir, 16 << 20);
    let (before, after) = store
        .and_then(|store| store.rewrite_into(to))
        .map_err(|e| format!("rewrite failed: {e}"))?;
    Ok(Outcome::ok(format!(
        "rewrote {} ({:.1} MiB) into {} ({:.1} MiB) in {:.1?}\n",
        dir.display(),
        before as f64 / 1048576.0,
        to.display(),
        after as f64 / 1048576.0,
        started.elapsed()
    )))
}

/// `fieldsync load`: writes a backlog straight into the store. The counts are kept up to
/// date through the load, and its checkpoints persist them, so the service's next start
/// need not read every op.
pub fn load(dir: &Path, backlog: &Backlog) -> Result<Outcome, String> {
    let started = Instant::now();
    let done = SledStore::open(dir)
        .and_then(|store| {
            outbox::count_if_unknown(&store)?;
            bulk_load::load(&store, backlog)
        })
        .map_err(|e| format!("load: {e}"))?;
    Ok(Outcome::ok(format!(
        "loaded {} ops in {} journal records in {:.1}s\n",
        done.ops,
        done.records,
        started.elapsed().as_secs_f64()
    )))
}
