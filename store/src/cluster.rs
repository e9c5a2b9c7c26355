//! Several supervisors on one store: leases, run slots and cron firings.
//!
//! On a shared store (PostgreSQL) every process that records runs is a
//! node with a lease: its runs are `running` while it renews the lease
//! ([`Store::heartbeat`]); once the lease runs out, any live node marks them
//! `lost` ([`Store::reap`]) and frees what the dead node held. An agent's
//! `max_concurrent` is a count of slots across the cluster, and each cron
//! firing is a row that exactly one node inserts.
//!
//! On SQLite (one host, one daemon) there is nothing to agree on: slots and
//! firings are decided in the daemon's memory, runs of a dead process are
//! found by its pid, and these calls do nothing.

use supervisor_config::Overlap;

use crate::db::Backend;
use crate::postgres::cluster as pg;
use crate::{Result, Store};

/// What a node does with a cron firing it tried to claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firing {
    /// Another node claimed it.
    Taken,
    /// Ours: start its run.
    Start,
    /// Ours, skipped: an earlier run of the schedule is still going
    /// (`overlap = "skip"`).
    Skip,
    /// Ours, to start when the earlier run ends (`overlap = "queue"`).
    Queued,
}

/// A queued firing, asked again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    Start,
    Wait,
    /// No longer queued here (taken for lost while this node was cut off).
    Gone,
}

/// What a reap found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reaped {
    /// Runs of dead nodes, now `lost`.
    pub lost: Vec<String>,
}

impl Store {
    /// Renews this node's lease (and registers it). `false` when live
    /// nodes had taken it for dead: its runs until then are marked lost.
    pub fn heartbeat(&mut self) -> Result<bool> {
        match &mut self.db {
            Backend::Sqlite(_) => Ok(true),
            Backend::Postgres(db) => db.call(pg::heartbeat),
        }
    }

    /// This node stops (cleanly): it gives up its lease.
    pub fn leave(&mut self) -> Result<()> {
        match &mut self.db {
            Backend::Sqlite(_) => Ok(()),
            Backend::Postgres(db) => db.call(pg::leave),
        }
    }

    /// How long a node's lease lasts (`None` on a store of one host).
    pub fn lease(&self) -> Option<std::time::Duration> {
        match &self.db {
            Backend::Sqlite(_) => None,
            Backend::Postgres(db) => Some(db.lease()),
        }
    }

    /// Marks the runs of nodes whose lease ran out as `lost` and frees their
    /// slots and firings. A read first, so that a healthy cluster's reap
    /// does not queue at the audit seal.
    pub fn reap(&mut self) -> Result<Reaped> {
        let Backend::Postgres(_) = self.db else {
            return Ok(Reaped::default());
        };
        let never = |_: i64| false;
        let orphans = self.db.read(|tx| tx.orphaned_runs(&never))?;
        let lost = if orphans.is_empty() {
            Vec::new()
        } else {
            self.mark_lost_runs(&never)?
        };
        if let Backend::Postgres(db) = &mut self.db {
            db.call(pg::release_dead)?;
        }
        Ok(Reaped { lost })
    }

    /// Takes one of `limit` run slots of `agent` across every node, for
    /// `token`; `false` when all are held. Always `true` on a store of one
    /// host (the daemon counts them itself).
    pub fn acquire_slot(&mut self, agent: &str, limit: u32, token: &str) -> Result<bool> {
        match &mut self.db {
            Backend::Sqlite(_) => Ok(true),
            Backend::Postgres(db) => {
                db.call(|c, ctx| pg::acquire_slot(c, ctx, agent, limit, token))
            }
        }
    }

    /// Gives a slot back.
    pub fn release_slot(&mut self, token: &str) -> Result<()> {
        match &mut self.db {
            Backend::Sqlite(_) => Ok(()),
            Backend::Postgres(db) => db.call(|c, _| pg::release_slot(c, token)),
        }
    }

    /// Claims the firing of `schedule` due at `at` (RFC 3339, UTC) for this
    /// node, applying `overlap` against the open firings of every node.
    /// Always [`Firing::Start`] on a store of one host.
    pub fn claim_firing(&mut self, schedule: &str, at: &str, overlap: Overlap) -> Result<Firing> {
        match &mut self.db {
            Backend::Sqlite(_) => Ok(Firing::Start),
            Backend::Postgres(db) => {
                db.call(|c, ctx| pg::claim_firing(c, ctx, schedule, at, overlap))
            }
        }
    }

    /// Whether a queued firing may start now.
    pub fn start_queued_firing(&mut self, schedule: &str, at: &str) -> Result<Queued> {
        match &mut self.db {
            Backend::Sqlite(_) => Ok(Queued::Start),
            Backend::Postgres(db) => db.call(|c, ctx| pg::start_queued(c, ctx, schedule, at)),
        }
    }

    /// The run of a firing ended (or was never started).
    pub fn end_firing(&mut self, schedule: &str, at: &str) -> Result<()> {
        match &mut self.db {
            Backend::Sqlite(_) => Ok(()),
            Backend::Postgres(db) => db.call(|c, _| pg::end_firing(c, schedule, at)),
        }
    }
}
