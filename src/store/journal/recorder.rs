//! The recorder: a closure's writes captured as a journal record's effects instead of
//! performed, with reads that see them.

use super::wire::{outranks, Effect};
use crate::store::tally::Shift;
use crate::store::{Storage, StoreError, Tree, Tx};
use std::cell::RefCell;

/// Records a closure's writes as effects instead of performing them. Reads see the
/// closure's own earlier writes, then the store.
pub struct Recorder<'a> {
    store: &'a dyn Storage,
    effects: RefCell<Vec<Effect>>,
}

impl<'a> Recorder<'a> {
    pub fn new(store: &'a dyn Storage) -> Self {
        Recorder {
            store,
            effects: RefCell::new(Vec::new()),
        }
    }
    pub fn into_effects(self) -> Vec<Effect> {
        self.effects.into_inner()
    }
}

impl Tx for Recorder<'_> {
    fn get_raw(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let effects = self.effects.borrow();
        let mine = effects
            .iter()
            .rev()
            .find(|e| e.target() == Some((tree, key)));
        match mine {
            Some(Effect::Put { value, .. }) => Ok(Some(value.clone())),
            Some(Effect::Remove { .. }) => Ok(None),
            Some(Effect::Raise { value, .. }) => {
                let stored = self.store.get_raw(tree, key)?;
                Ok(Some(match stored {
                    Some(s) if !outranks(value, Some(&s)) => s,
                    _ => value.clone(),
                }))
            }
            // `target()` matched, so never a count's effect.
            Some(Effect::Count(_) | Effect::Recount) | None => self.store.get_raw(tree, key),
        }
    }
    fn insert_raw(&self, tree: Tree, key: &[u8], value: Vec<u8>) -> Result<(), StoreError> {
        self.effects.borrow_mut().push(Effect::Put {
            tree,
            key: key.to_vec(),
            value,
        });
        Ok(())
    }
    fn remove(&self, tree: Tree, key: &[u8]) -> Result<(), StoreError> {
        self.effects.borrow_mut().push(Effect::Remove {
            tree,
            key: key.to_vec(),
        });
        Ok(())
    }
    fn raise_raw(&self, tree: Tree, key: &[u8], value: Vec<u8>) -> Result<(), StoreError> {
        self.effects.borrow_mut().push(Effect::Raise {
            tree,
            key: key.to_vec(),
            value,
        });
        Ok(())
    }
    fn count(&self, shift: Shift) {
        self.effects.borrow_mut().push(Effect::Count(shift));
    }
    fn recount(&self) {
        self.effects.borrow_mut().push(Effect::Recount);
    }
}
