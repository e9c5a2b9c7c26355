//! Cron schedules: one task per schedule, sleeping until its next firing in
//! its time zone, then submitting a user-less run (team secrets only).
//!
//! Firings missed while the daemon was down are not made up: after a start
//! or a reload each schedule waits for its next firing from now. A firing
//! that falls into a daylight-saving gap is skipped for that day; one in a
//! repeated hour fires once (see the triggers crate).

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
