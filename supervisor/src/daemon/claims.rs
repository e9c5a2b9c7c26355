//! The daemon's handles on its delivery claims: one on SQLite (one file,
//! one writer), a few on PostgreSQL, so that claims arriving together
//! commit together (one flush of the database's log for several) instead
//! of queueing behind each other's flush.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, TryLockError};

use supervisor_store::{Deliveries, Location, Result};

/// Connections for claims on a shared store.
const SHARED_HANDLES: usize = 4;

pub struct Claims {
    handles: Vec<Mutex<Deliveries>>,
    next: AtomicUsize,
}

impl Claims {
    /// Opens the claims of the store at `location`; `first` is the handle
    /// already open (the one that took over older claims).
    pub fn open(
        first: Deliveries,
        location: &Location,
        state_dir: &std::path::Path,
    ) -> Result<Claims> {
        let mut handles = vec![Mutex::new(first)];
        if location.is_shared() {
            for _ in 1..SHARED_HANDLES {
                handles.push(Mutex::new(Deliveries::open_at(location, state_dir)?));
            }
        }
        Ok(Claims {
            handles,
            next: AtomicUsize::new(0),
        })
    }

    /// Runs `f` on a free handle, or waits for one. Blocks: call it on a
    /// blocking thread.
    pub fn with<T>(&self, f: impl FnOnce(&mut Deliveries) -> T) -> T {
        for h in &self.handles {
            match h.try_lock() {
                Ok(mut d) => return f(&mut d),
                // A panic cannot leave a claim half-written (transactions
                // roll back): the handle is still usable.
                Err(TryLockError::Poisoned(p)) => return f(&mut p.into_inner()),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        f(&mut self.handles[i].lock().unwrap_or_else(|p| p.into_inner()))
    }
}
