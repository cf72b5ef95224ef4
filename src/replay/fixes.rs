//! Replaying a device's location fixes: OFSC's `setPositions`, and what its per-item answer
//! means for the op.

use super::Replayer;
use crate::ofsc::wire::{Position, PositionsResult};
use crate::ofsc::OfscError;
use crate::write::outbox::{self, Op};

impl Replayer {
    pub(super) async fn send_fixes(&self, op: &Op, fixes: &[outbox::Fix]) -> Result<(), OfscError> {
        let items: Vec<Position> = fixes
            .iter()
            .map(|f| Position {
                resource_id: op.resource_id.clone(),
                time: f.time.to_rfc3339(),
                lat: f.lat,
                lng: f.lng,
                acc: f.accuracy.map(|a| a.round() as i64),
            })
            .collect();
        let r = self.ofsc.set_positions(&items).await?;
        let outcome = outcome(&r);
        if outcome.is_ok() && r.items_failed > 0 {
            tracing::warn!(op = %op.id, failed = r.items_failed, errors = ?r.errors, "OFSC refused some positions; the others are stored");
        }
        outcome
    }
}

/// OFSC keeps the fixes it accepted: refusing the op for one bad fix would send the stored
/// ones again when an operator retries it. So only a batch OFSC refused whole is a
/// rejection; a partial one is applied (and logged).
fn outcome(r: &PositionsResult) -> Result<(), OfscError> {
    if r.items_failed > 0 && r.items_processed == 0 {
        return Err(OfscError::Rejected {
            status: 400,
            title: "Bad Request".into(),
            detail: format!("{} positions refused: {:?}", r.items_failed, r.errors),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(processed: i64, failed: i64) -> PositionsResult {
        PositionsResult {
            items_processed: processed,
            items_failed: failed,
            errors: (0..failed)
                .map(|i| json!({"itemIndex": i, "message": "refused"}))
                .collect(),
        }
    }

    #[test]
    fn a_batch_refused_whole_is_a_rejection_and_a_partial_one_is_applied() {
        assert!(outcome(&answer(3, 0)).is_ok());
        assert!(outcome(&answer(2, 1)).is_ok(), "the stored two stay stored");
        match outcome(&answer(0, 3)) {
            Err(OfscError::Rejected { status, detail, .. }) => {
                assert_eq!(status, 400);
                assert!(detail.contains("3 positions refused"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
    }
}
