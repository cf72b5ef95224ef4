//! A sync push as a batch of commands. Status commands are staged (each judged against the
//! view the one before it advanced) and the batch's ops are appended together as one journal
//! record, so a batch is atomic; other kinds write on their own after the stage commits.
//! The batch also keeps the device's high-water `seq` and makes the whole batch durable once.

use super::outbox::{self, Enqueued, Stage, Submitter};
use super::{Command, WriteError};
use crate::auth::Principal;
use crate::state::AppState;
use crate::store::StoreError;
use std::sync::Arc;

pub struct Batch<'a> {
    state: &'a AppState,
    who: &'a Principal,
    stage: Arc<Stage>,
}

impl<'a> Batch<'a> {
    pub fn new(state: &'a AppState, who: &'a Principal) -> Batch<'a> {
        let cache = state.cache.clone();
        let stage = Stage::new(Box::new(move |resource, date, committed| {
            cache.views.settle(&cache, resource, date, committed)
        }));
        Batch { state, who, stage }
    }

    /// The highest `seq` the device's ops reached before this batch.
    pub fn high_water(&self) -> Result<u64, StoreError> {
        outbox::device_seq(
            self.state.store.as_ref(),
            &self.who.user_id,
            &self.who.device_id,
        )
    }

    /// Makes a batch op's submitter part of the batch. A status op joins the stage. The
    /// other kinds read and write sled directly, so the stage is committed (and its lane
    /// locks let go) before them.
    pub fn enlist(&self, mut submitter: Submitter) -> Result<Submitter, StoreError> {
        if submitter.action == "status" {
            submitter.stage = Some(self.stage.clone());
        } else {
            self.stage.commit_and_release(self.state.store.as_ref())?;
        }
        Ok(submitter)
    }

    /// The first answer to an op accepted before (in an earlier batch, or staged in this one).
    pub fn earlier_answer(&self, submitter: &Submitter) -> Result<Option<Enqueued>, StoreError> {
        outbox::idempotent_answer(self.state.store.as_ref(), submitter)
    }

    /// Runs one command of the batch (its submitter enlisted).
    pub async fn submit(&self, command: Command) -> Result<Enqueued, WriteError> {
        super::submit(self.state, self.who, command).await
    }

    /// Commits what is staged, so a read of sled sees the batch's earlier ops.
    pub fn commit(&self) -> Result<(), StoreError> {
        self.stage.commit(self.state.store.as_ref())
    }

    /// Notes the `seq` of an op that left no op record (a refusal, a grant), so the
    /// device's high-water mark passes it.
    pub fn note_seq(&self, seq: u64) -> Result<(), StoreError> {
        outbox::note_device_seq(
            self.state.store.as_ref(),
            &self.who.user_id,
            &self.who.device_id,
            seq,
        )
    }

    /// Ends the batch: what was accepted is written even when the batch failed part way
    /// (`applied`), so its resend gets duplicates; then, if it did not fail, one flush makes
    /// it durable and the replayer is woken. Answers the device's new high-water `seq`.
    pub async fn finish<E: From<StoreError>>(self, applied: Result<(), E>) -> Result<u64, E> {
        let committed = self.stage.commit_and_release(self.state.store.as_ref());
        applied?;
        committed?;
        self.state.commit.flush().await?;
        self.state.replayer.wake();
        Ok(self.high_water()?)
    }
}
