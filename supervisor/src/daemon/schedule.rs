//! Cron schedules: one task per schedule, sleeping until its next firing in
//! its time zone, then submitting a user-less run (team secrets only).
//!
//! Firings missed while the daemon was down are not made up: after a start
//! or a reload each schedule waits for its next firing from now. A firing
//! that falls into a daylight-saving gap is skipped for that day; one in a
//! repeated hour fires once (see the triggers crate).
//!
//! On a shared store every node wakes for every firing, and the one that
//! claims the firing's row runs it; the overlap rules are applied against
//! the open firings of every node (`supervisor_store::Firing`).

use std::sync::Arc;

use supervisor_config::{Overlap, Schedule};
use supervisor_triggers::{CronSchedule, TriggerEvent};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::runner::Runner;

/// The running schedule tasks; dropping it stops them.
pub struct Scheduler {
    tasks: JoinSet<()>,
}

impl Scheduler {
    /// Starts one task per schedule. The daemon refuses a config with a
    /// schedule that does not parse; should one get here, it is logged and
    /// skipped.
    pub fn start(schedules: &[Schedule], runner: &Arc<Runner>) -> Scheduler {
        let mut tasks = JoinSet::new();
        for s in schedules {
            match CronSchedule::from_config(s) {
                Ok(cron) => {
                    tasks.spawn(fire(s.clone(), cron, runner.clone()));
                }
                Err(e) => tracing::error!(schedule = %s.name, error = %e, "schedule skipped"),
            }
        }
        Scheduler { tasks }
    }

    pub fn stop(&mut self) {
        self.tasks.abort_all();
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}

async fn fire(schedule: Schedule, cron: CronSchedule, runner: Arc<Runner>) {
    // At most one run of this schedule at a time, unless overlap = "allow".
    let one_at_a_time = Arc::new(Semaphore::new(1));
    let mut after = chrono::Utc::now();
    loop {
        let Some(next) = cron.next_after(after) else {
            tracing::warn!(schedule = %schedule.name, "schedule has no further firings");
            return;
        };
        let next_utc = next.with_timezone(&chrono::Utc);
        let wait = (next_utc - chrono::Utc::now()).to_std().unwrap_or_default();
        tokio::time::sleep(wait).await;
        let late = (chrono::Utc::now() - next_utc)
            .num_microseconds()
            .unwrap_or(0)
            .max(0) as f64
            / 1e6;
        runner.metrics.schedule_lateness(late);
        after = next_utc;

        let req = supervisor_triggers::cron::event(&schedule, &cron, &next);
        if runner.engine().shared {
            shared::fire(&schedule, next_utc, req, &runner).await;
            continue;
        }
        match schedule.overlap {
            Overlap::Allow => {
                let _ = runner.submit(req, None);
            }
            Overlap::Skip => match one_at_a_time.clone().try_acquire_owned() {
                Ok(permit) => submit_holding(&runner, req, permit),
                Err(_) => {
                    tracing::info!(schedule = %schedule.name, "previous run still going: firing skipped (overlap = \"skip\")")
                }
            },
            Overlap::Queue => {
                let (runner, slot) = (runner.clone(), one_at_a_time.clone());
                tokio::spawn(async move {
                    if let Ok(permit) = slot.acquire_owned().await {
                        submit_holding(&runner, req, permit);
                    }
                });
            }
        }
    }
}

/// Submits a run that keeps `permit` until it ends.
fn submit_holding(
    runner: &Arc<Runner>,
    req: TriggerEvent,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let replier: Arc<dyn super::runner::Replier> =
        Arc::new(ReleaseOnEnd(std::sync::Mutex::new(Some(permit))));
    let _ = runner.submit(req, Some(replier));
}

/// Firings agreed on with the other nodes of a shared store.
mod shared {
    use std::sync::Arc;

    use chrono::{DateTime, Utc};
    use supervisor_config::Schedule;
    use supervisor_store::{Firing, Queued};

    use super::super::runner::{Replier, ReplyFuture, Runner};
    use crate::run::{Engine, Outcome};
    use supervisor_triggers::TriggerEvent;

    /// How often a queued firing asks whether the earlier run has ended.
    const QUEUE_POLL: std::time::Duration = std::time::Duration::from_millis(250);

    pub(super) async fn fire(
        schedule: &Schedule,
        due: DateTime<Utc>,
        req: TriggerEvent,
        runner: &Arc<Runner>,
    ) {
        let engine = runner.engine();
        let at = supervisor_store::format_time(due);
        let (name, at2, overlap) = (schedule.name.clone(), at.clone(), schedule.overlap);
        let claimed = engine
            .with_store(move |s| s.claim_firing(&name, &at2, overlap))
            .await;
        let firing = match claimed {
            Ok(Ok(f)) => f,
            Ok(Err(e)) => {
                tracing::error!(schedule = %schedule.name, error = %e, "could not claim a firing; another node may run it");
                return;
            }
            Err(e) => {
                tracing::error!(schedule = %schedule.name, error = %e, "could not claim a firing; another node may run it");
                return;
            }
        };
        let end = Arc::new(EndFiring {
            schedule: schedule.name.clone(),
            at,
            engine,
        });
        match firing {
            Firing::Taken => {}
            Firing::Skip => {
                tracing::info!(schedule = %schedule.name, "previous run still going on some node: firing skipped (overlap = \"skip\")")
            }
            Firing::Start => {
                let _ = runner.submit(req, Some(end));
            }
            Firing::Queued => {
                let runner = runner.clone();
                tokio::spawn(async move {
                    loop {
                        let (name, at) = (end.schedule.clone(), end.at.clone());
                        let asked = end
                            .engine
                            .with_store(move |s| s.start_queued_firing(&name, &at))
                            .await;
                        match asked {
                            Ok(Ok(Queued::Start)) => {
                                let _ = runner.submit(req, Some(end));
                                return;
                            }
                            Ok(Ok(Queued::Gone)) => return,
                            Ok(Ok(Queued::Wait)) => {}
                            Ok(Err(e)) => {
                                tracing::warn!(schedule = %end.schedule, error = %e, "could not ask after a queued firing")
                            }
                            Err(e) => {
                                tracing::warn!(schedule = %end.schedule, error = %e, "could not ask after a queued firing")
                            }
                        }
                        tokio::time::sleep(QUEUE_POLL).await;
                    }
                });
            }
        }
    }

    /// Closes a firing's row when its run ends (or is refused).
    struct EndFiring {
        schedule: String,
        at: String,
        engine: Engine,
    }

    impl Replier for EndFiring {
        fn started(&self, _: &supervisor_store::RunRecord) -> ReplyFuture {
            Box::pin(async { Vec::new() })
        }

        fn finished(&self, _: &Outcome) -> ReplyFuture {
            let (name, at, engine) = (self.schedule.clone(), self.at.clone(), self.engine.clone());
            Box::pin(async move {
                match engine.with_store(move |s| s.end_firing(&name, &at)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "could not close a firing; it stays open until this node stops")
                    }
                    Err(e) => tracing::warn!(error = %e, "could not close a firing"),
                }
                Vec::new()
            })
        }
    }
}

/// Holds a schedule's slot until its run ends.
struct ReleaseOnEnd(std::sync::Mutex<Option<tokio::sync::OwnedSemaphorePermit>>);

impl super::runner::Replier for ReleaseOnEnd {
    fn started(&self, _: &supervisor_store::RunRecord) -> super::runner::ReplyFuture {
        Box::pin(async { Vec::new() })
    }
    fn finished(&self, _: &crate::run::Outcome) -> super::runner::ReplyFuture {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
        Box::pin(async { Vec::new() })
    }
}
