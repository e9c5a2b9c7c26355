//! A node's life on a shared store: every third of its lease it renews the
//! lease, marks the runs of nodes whose lease ran out `lost` (and frees
//! their slots and firings), adopts the deliveries they had answered but
//! not run, takes up its own claims that it never queued, and removes the
//! leftovers (homes, cgroups) of its own runs that are over. At a clean
//! stop it gives the lease up.
//!
//! It works on a store handle (a connection) of its own, so that renewing
//! the lease never waits behind the runs' store work.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use supervisor_store::Store;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::Daemon;
use crate::context::Context;

pub struct Keeper {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    store: Arc<Mutex<Store>>,
}

impl Keeper {
    pub fn start(ctx: &Context, lease: Duration, daemon: Arc<Daemon>) -> Result<Keeper> {
        let store = Arc::new(Mutex::new(ctx.store(true)?));
        let (stop, mut stopped) = watch::channel(false);
        let every = lease / 3;
        let state_dir = ctx.state_dir.clone();
        let mine = store.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    _ = stopped.wait_for(|s| *s) => return,
                }
                tick(&mine, &daemon, &state_dir).await;
            }
        });
        Ok(Keeper { stop, task, store })
    }

    /// Stops renewing and gives the lease up (the daemon's runs are over).
    pub async fn leave(self) {
        self.stop.send_replace(true);
        let _ = self.task.await;
        let store = self.store;
        let left = tokio::task::spawn_blocking(move || {
            store.lock().unwrap_or_else(|p| p.into_inner()).leave()
        })
        .await;
        if let Ok(Err(e)) = left {
            tracing::warn!(error = %e, "could not give up this node's lease; it runs out by itself");
        }
    }
}

async fn tick(store: &Arc<Mutex<Store>>, daemon: &Arc<Daemon>, state_dir: &std::path::Path) {
    let (store, state_dir) = (store.clone(), state_dir.to_owned());
    let engine = daemon.runner.engine();
    let renewed = tokio::task::spawn_blocking(move || {
        let mut s = store.lock().unwrap_or_else(|p| p.into_inner());
        let known = s.heartbeat()?;
        let reaped = s.reap()?;
        crate::run::recover::sweep(&mut s, &state_dir, &engine.host.cgroups, |_| Ok(()))?;
        anyhow::Ok((known, reaped))
    })
    .await;
    match renewed {
        Ok(Ok((known, reaped))) => {
            if !known {
                tracing::error!(
                    "this node's lease had run out (the database was out of reach, or this node stalled, for longer than [store] lease): other nodes took its runs until now for lost"
                );
            }
            if !reaped.lost.is_empty() {
                tracing::warn!(runs = ?reaped.lost, "runs of a node whose lease ran out are now marked lost");
            }
        }
        Ok(Err(e)) => {
            tracing::error!(error = %format!("{e:#}"), "could not renew this node's lease");
            return;
        }
        Err(e) => {
            tracing::error!(error = %e, "could not renew this node's lease");
            return;
        }
    }
    // Deliveries that dead nodes answered but never ran, and this node's
    // own claims that it never queued.
    super::resume::pending(daemon).await;
    super::resume::stale(daemon).await;
}
