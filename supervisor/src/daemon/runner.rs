//! The daemon's run engine: every trigger submits here. Runs wait in a
//! bounded queue for a free slot (`[server] max_concurrent_runs` and the
//! agent's `max_concurrent`); a full queue refuses with a recorded reason,
//! never silently. At shutdown, waiting runs are refused and running ones
//! get a grace period before their process groups are stopped.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use supervisor_store::{RunRecord, RunStatus};
use supervisor_triggers::TriggerEvent;
use tokio::runtime::Handle;
use tokio::sync::{Semaphore, mpsc, watch};

use super::metrics::Metrics;
use crate::run::output::Stream;
use crate::run::{Echo, Engine, Outcome};

/// A future that answers about a run somewhere (Slack, Linear). Its result
/// is the list of failures to note on the run; a failure never affects it.
pub type ReplyFuture = Pin<Box<dyn Future<Output = Vec<String>> + Send>>;

/// Where replies about a run go.
pub trait Replier: Send + Sync {
    /// The run was recorded and is about to start.
    fn started(&self, record: &RunRecord) -> ReplyFuture;
    /// The run ended (or was refused).
    fn finished(&self, outcome: &Outcome) -> ReplyFuture;
}

/// A client of the control socket attached to its run: it receives the
/// redacted output, and can stop the run, or take it off the queue before
/// it starts.
pub struct Attach {
    pub output: mpsc::Sender<(Stream, Vec<u8>)>,
    /// Turns true when the client asks to stop or goes away (a dropped
    /// sender counts as gone).
    pub cancel: watch::Receiver<bool>,
}

/// Why a submission was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Busy {
    #[error("the run queue is full ({0} runs waiting)")]
    QueueFull(usize),
    #[error("the supervisor is shutting down")]
    ShuttingDown,
}

/// Where the daemon is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    /// Taking runs.
    Accepting,
    /// Shutting down: waiting runs are refused, running ones may finish.
    Draining,
    /// The grace is over: running agents are stopped.
    Stopping,
}

pub struct Runner {
    engine: RwLock<Engine>,
    global: Arc<Semaphore>,
    per_agent: Mutex<HashMap<String, Arc<Semaphore>>>,
    queue_limit: usize,
    waiting: AtomicUsize,
    phase: watch::Sender<Phase>,
    /// Submitted runs not yet finished (waiting or running).
    active: watch::Sender<usize>,
    pub metrics: Arc<Metrics>,
    /// The runtime runs go to, whichever thread submits them (the HTTP
    /// listener has a runtime of its own).
    runtime: Handle,
    /// Claimed deliveries: a run's work is dropped from them once the run
    /// is recorded.
    deliveries: Option<Arc<super::claims::Claims>>,
    /// Deliveries (`<source>:<key>`) queued or running here and not yet
    /// recorded: a claim of this node that is in none of them was never
    /// queued (see `resume::stale`).
    in_flight: Mutex<HashSet<String>>,
}

impl Runner {
    /// Must be called inside the runtime that is to run the runs.
    pub fn new(
        engine: Engine,
        metrics: Arc<Metrics>,
        deliveries: Option<Arc<super::claims::Claims>>,
    ) -> Arc<Runner> {
        let server = &engine.config.server;
        Arc::new(Runner {
            global: Arc::new(Semaphore::new(server.max_concurrent_runs as usize)),
            queue_limit: server.queue_limit as usize,
            engine: RwLock::new(engine),
            per_agent: Mutex::new(HashMap::new()),
            waiting: AtomicUsize::new(0),
            phase: watch::Sender::new(Phase::Accepting),
            active: watch::Sender::new(0),
            metrics,
            runtime: Handle::current(),
            deliveries,
            in_flight: Mutex::new(HashSet::new()),
        })
    }

    /// The run (or the refusal) that `delivery` (`<source>:<key>`) promised
    /// is recorded: its work is dropped from the claims, on a blocking thread.
    pub fn finish_delivery(&self, delivery: Option<&str>) {
        if let Some(d) = delivery {
            self.in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(d);
        }
        let (Some(deliveries), Some((source, key))) = (
            self.deliveries.clone(),
            delivery.and_then(|d| d.split_once(':')),
        ) else {
            return;
        };
        let (source, key) = (source.to_owned(), key.to_owned());
        self.runtime.spawn_blocking(move || {
            if let Err(e) = deliveries.with(|d| d.finish(&source, &key)) {
                tracing::error!(%source, error = %e, "could not mark a delivery done; a restart would take it up again and find its run");
            }
        });
    }

    /// Whether a delivery is queued or running here, not yet recorded.
    pub fn in_flight(&self, delivery: &str) -> bool {
        self.in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(delivery)
    }

    /// The engine as of the last (re)load.
    pub fn engine(&self) -> Engine {
        self.engine
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The runs' runtime, for work that belongs with them (replies).
    pub fn runtime(&self) -> &Handle {
        &self.runtime
    }

    /// Swaps in a reloaded config; running runs keep the one they started with.
    pub fn replace_engine(&self, engine: Engine) {
        *self.engine.write().unwrap_or_else(|p| p.into_inner()) = engine;
    }

    pub fn running(&self) -> u64 {
        self.metrics.running.get().max(0) as u64
    }

    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    fn agent_slots(&self, agent: &str, limit: Option<u32>) -> Option<Arc<Semaphore>> {
        let limit = limit? as usize;
        let mut map = self.per_agent.lock().unwrap_or_else(|p| p.into_inner());
        Some(
            map.entry(agent.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(limit)))
                .clone(),
        )
    }

    /// Queues a run; it starts when a slot is free. A refusal is recorded
    /// as a rejected run and told to the replier.
    pub fn submit(
        self: &Arc<Self>,
        req: TriggerEvent,
        replier: Option<Arc<dyn Replier>>,
    ) -> Result<(), Busy> {
        match self.offer(req, replier, None) {
            Ok(()) => Ok(()),
            Err(refused) => {
                let (busy, req, replier) = *refused;
                self.refuse(&req, busy.to_string(), replier);
                Err(busy)
            }
        }
    }

    /// [`Runner::submit`] for a run a client follows (a `cli` run through
    /// the control socket). A refusal reaches the client through `replier`.
    pub fn submit_attached(
        self: &Arc<Self>,
        req: TriggerEvent,
        replier: Arc<dyn Replier>,
        attach: Attach,
    ) -> Result<(), Busy> {
        match self.offer(req, Some(replier), Some(attach)) {
            Ok(()) => Ok(()),
            Err(refused) => {
                let (busy, req, replier) = *refused;
                self.refuse(&req, busy.to_string(), replier);
                Err(busy)
            }
        }
    }

    /// Queues a run like [`Runner::submit`], but a refusal is handed back
    /// unrecorded, for a caller that has the sender retry instead (the run
    /// is then recorded once, when the retry is queued).
    #[allow(clippy::type_complexity)]
    pub fn offer(
        self: &Arc<Self>,
        req: TriggerEvent,
        replier: Option<Arc<dyn Replier>>,
        attach: Option<Attach>,
    ) -> Result<(), Box<(Busy, TriggerEvent, Option<Arc<dyn Replier>>)>> {
        let refusal = if *self.phase.borrow() != Phase::Accepting {
            Some(Busy::ShuttingDown)
        } else {
            let waiting = self.waiting.fetch_add(1, Ordering::SeqCst);
            if waiting >= self.queue_limit && self.global.available_permits() == 0 {
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                Some(Busy::QueueFull(waiting))
            } else {
                None
            }
        };
        if let Some(busy) = refusal {
            return Err(Box::new((busy, req, replier)));
        }
        self.metrics.queued.set(self.waiting() as i64);
        self.active.send_modify(|n| *n += 1);
        if let Some(d) = &req.delivery {
            self.in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(d.clone());
        }
        let me = self.clone();
        self.runtime.spawn(async move {
            me.run(req, replier, attach).await;
            me.active.send_modify(|n| *n -= 1);
        });
        Ok(())
    }

    /// Records a refusal on a blocking thread of the runs' runtime (never
    /// the caller's, which may be the HTTP listener), then tells the replier.
    fn refuse(
        self: &Arc<Self>,
        req: &TriggerEvent,
        reason: String,
        replier: Option<Arc<dyn Replier>>,
    ) {
        let (me, req) = (self.clone(), req.clone());
        self.runtime
            .spawn(async move { me.record_refusal(req, reason, replier).await });
    }

    async fn record_refusal(
        &self,
        req: TriggerEvent,
        reason: String,
        replier: Option<Arc<dyn Replier>>,
    ) {
        tracing::warn!(agent = %req.agent, trigger = %req.kind, %reason, "run refused");
        let engine = self.engine();
        let recorded = {
            let req = req.clone();
            tokio::task::spawn_blocking(move || engine.record_refusal(&req, reason)).await
        };
        match recorded {
            Ok(Ok(outcome)) => {
                self.finish_delivery(req.delivery.as_deref());
                self.metrics.run_finished(
                    &req.agent,
                    req.kind.as_str(),
                    outcome.record.status.label(),
                );
                if let Some(r) = replier {
                    self.reply_finished(r, outcome).await;
                }
            }
            Ok(Err(e)) => {
                tracing::error!(error = %format!("{e:#}"), "could not record a refused run")
            }
            Err(e) => tracing::error!(error = %e, "could not record a refused run"),
        }
    }

    async fn run(
        self: &Arc<Self>,
        req: TriggerEvent,
        replier: Option<Arc<dyn Replier>>,
        attach: Option<Attach>,
    ) {
        let (echo, cancel) = match attach {
            Some(a) => (Echo::Channel(a.output), Some(a.cancel)),
            None => (Echo::Quiet, None),
        };
        let cancelled = |cancel: Option<watch::Receiver<bool>>| async move {
            match cancel {
                // A true value or a dropped sender: the client is done.
                Some(mut c) => {
                    let _ = c.wait_for(|stop| *stop).await;
                }
                None => std::future::pending().await,
            }
        };
        let engine = self.engine();
        let limit = engine
            .config
            .agent(&req.agent)
            .and_then(|a| a.max_concurrent);
        let agent_slots = self.agent_slots(&req.agent, limit);
        let mut phase = self.phase.subscribe();
        // Wait for the agent's slot (on a shared store, one of the whole
        // cluster's too), then a global one; give up at shutdown.
        let permits = async {
            let agent = match &agent_slots {
                Some(s) => Some(s.clone().acquire_owned().await.ok()?),
                None => None,
            };
            let cluster = match limit {
                Some(limit) if engine.shared => {
                    Some(ClusterSlot::acquire(&engine, &req.agent, limit, &self.runtime).await)
                }
                _ => None,
            };
            let global = self.global.clone().acquire_owned().await.ok()?;
            Some((agent, cluster, global))
        };
        let draining = async {
            let _ = phase.wait_for(|p| *p != Phase::Accepting).await;
        };
        let permits = tokio::select! {
            biased;
            () = draining => Err(Busy::ShuttingDown.to_string()),
            () = cancelled(cancel.clone()) => Err("its client stopped it before it started".to_owned()),
            p = permits => p.ok_or_else(|| Busy::ShuttingDown.to_string()),
        };
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        self.metrics.queued.set(self.waiting() as i64);
        let _permits = match permits {
            Ok(p) => p,
            Err(reason) => {
                self.record_refusal(req, reason, replier).await;
                return;
            }
        };

        self.metrics.running.inc();
        self.metrics.run_started(&req.agent, req.kind.as_str());
        let mut phase = self.phase.subscribe();
        let stop_requested = async move {
            tokio::select! {
                _ = phase.wait_for(|p| *p == Phase::Stopping) => {}
                () = cancelled(cancel) => {}
            }
        };
        let (started_tx, started_rx) = tokio::sync::oneshot::channel::<RunRecord>();
        if let Some(r) = &replier {
            let (r, me) = (r.clone(), self.clone());
            tokio::spawn(async move {
                if let Ok(record) = started_rx.await {
                    let failures = r.started(&record).await;
                    me.note(&record.id, failures);
                }
            });
        }
        let result = engine
            .execute(req.clone(), echo, stop_requested, |record| {
                self.finish_delivery(req.delivery.as_deref());
                let _ = started_tx.send(record.clone());
            })
            .await;
        if result.is_ok() {
            // Refused inside the engine (no `on_start`): recorded all the same.
            self.finish_delivery(req.delivery.as_deref());
        }
        self.metrics.running.dec();
        match result {
            Ok(outcome) => {
                let r = &outcome.record;
                tracing::info!(run = %r.id, agent = %r.agent, trigger = %r.trigger, outcome = r.status.label(), "run finished");
                self.metrics
                    .run_finished(&r.agent, &r.trigger, r.status.label());
                self.metrics.redacted(r.redactions);
                for leak in r.detail["leaks"].as_array().into_iter().flatten() {
                    if let Some(secret) = leak["name"].as_str() {
                        self.metrics.leak(&r.agent, secret);
                    }
                }
                if let Some(rep) = replier {
                    self.reply_finished(rep, outcome).await;
                }
            }
            Err(e) => {
                tracing::error!(agent = %req.agent, error = %format!("{e:#}"), "run failed to complete");
                self.metrics
                    .run_finished(&req.agent, req.kind.as_str(), "error");
            }
        }
    }

    async fn reply_finished(&self, replier: Arc<dyn Replier>, outcome: Outcome) {
        let failures = replier.finished(&outcome).await;
        self.note(&outcome.record.id, failures);
    }

    /// Notes reply failures on the run, on a blocking thread.
    fn note(&self, run: &str, failures: Vec<String>) {
        if failures.is_empty() {
            return;
        }
        let (engine, run) = (self.engine(), run.to_owned());
        self.runtime.spawn_blocking(move || {
            let mut store = engine.store.lock().unwrap_or_else(|p| p.into_inner());
            for f in failures {
                tracing::warn!(%run, failure = %f, "reply failed");
                if let Err(e) = store.note_run(&run, &f) {
                    tracing::error!(%run, error = %e, "could not note a reply failure");
                }
            }
        });
    }

    /// Stops taking runs, refuses waiting ones, gives running ones `grace`
    /// to finish, then stops them (recorded `interrupted`).
    pub async fn shutdown(&self, grace: std::time::Duration) {
        self.phase.send_replace(Phase::Draining);
        let mut active = self.active.subscribe();
        if tokio::time::timeout(grace, active.wait_for(|n| *n == 0))
            .await
            .is_err()
        {
            tracing::info!(
                running = self.running(),
                "shutdown grace over: stopping the remaining runs"
            );
            self.phase.send_replace(Phase::Stopping);
            let _ = active.wait_for(|n| *n == 0).await;
        }
    }
}

/// One of an agent's `max_concurrent` slots across every node of a shared
/// store, held until dropped (the run is over).
struct ClusterSlot {
    token: String,
    engine: Engine,
    runtime: Handle,
}

/// How often a run waiting for a slot held on other nodes asks again.
const SLOT_POLL: std::time::Duration = std::time::Duration::from_millis(250);

impl ClusterSlot {
    /// Waits until a slot is free. A store error is logged and tried again:
    /// the run waits, as it would for a slot.
    async fn acquire(engine: &Engine, agent: &str, limit: u32, runtime: &Handle) -> ClusterSlot {
        let token = uuid::Uuid::now_v7().to_string();
        loop {
            let (a, t) = (agent.to_owned(), token.clone());
            match engine
                .with_store(move |s| s.acquire_slot(&a, limit, &t))
                .await
            {
                Ok(Ok(true)) => {
                    return ClusterSlot {
                        token,
                        engine: engine.clone(),
                        runtime: runtime.clone(),
                    };
                }
                Ok(Ok(false)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(%agent, error = %e, "could not ask for a slot; asking again")
                }
                Err(e) => {
                    tracing::warn!(%agent, error = %e, "could not ask for a slot; asking again")
                }
            }
            tokio::time::sleep(SLOT_POLL).await;
        }
    }
}

impl Drop for ClusterSlot {
    fn drop(&mut self) {
        let (token, engine) = (std::mem::take(&mut self.token), self.engine.clone());
        self.runtime.spawn_blocking(move || {
            let mut store = engine.store.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(e) = store.release_slot(&token) {
                tracing::warn!(error = %e, "could not give a slot back; it stays taken until this node stops");
            }
        });
    }
}

/// The text a run's outcome reads as in replies.
pub fn describe_outcome(status: &RunStatus) -> String {
    match status {
        RunStatus::Succeeded => "succeeded".into(),
        RunStatus::Failed { code } => format!("failed (exit code {code})"),
        RunStatus::Killed { signal } => format!("was killed by signal {signal}"),
        RunStatus::TimedOut => "timed out".into(),
        RunStatus::Rejected { reason } => format!("was refused: {reason}"),
        RunStatus::Interrupted => "was interrupted by a shutdown".into(),
        RunStatus::Lost => "was lost".into(),
        RunStatus::Leaked { secret } => {
            format!("was stopped: its output showed the value of {secret} (redacted)")
        }
        RunStatus::Running => "is running".into(),
    }
}
