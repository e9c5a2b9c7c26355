//! The run path, shared by every trigger: decide the secrets (scope rule),
//! open exactly those, start the agent in isolation, redact its output,
//! enforce its timeout, and record the outcome.

mod drain;
mod env;
mod home;
pub mod output;
mod record;
pub mod recover;

use std::fs::OpenOptions;
use std::future::Future;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result};
use serde_json::json;
use supervisor_config::{Agent, Config, OnLeak};
use supervisor_store::{OpenedSecret, RunRecord, RunStatus, Store};
use supervisor_triggers::TriggerEvent;
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;

use crate::redact::Redactor;
use crate::sandbox::{self, AgentPlan, Host, Prepared};
use crate::scope::{self, Injection, Refusal, TriggerContext};
use crate::spawn::{self, ChildSpec, Tracked};
use home::RunHome;
use record::{leaks, new_record, redact_json, status_of, truncate};

pub use env::MAX_PROMPT_ENV;
pub use output::Echo;

/// The exit status of `supervisor run` when the supervisor refused or
/// failed before the agent started (as `timeout(1)` and `env(1)` use it).
pub const EXIT_REFUSED: i32 = 125;
/// The agent's command exists but cannot be executed.
pub const EXIT_CANNOT_EXECUTE: i32 = 126;
/// The agent's command was not found.
pub const EXIT_NOT_FOUND: i32 = 127;
/// The agent ran past its timeout.
pub const EXIT_TIMEOUT: i32 = 124;
/// The agent's output showed a secret's value and its agent has `on_leak = "fail"`.
pub const EXIT_LEAKED: i32 = 123;
/// How much of a prompt the run record keeps (after redaction).
const PROMPT_KEPT: usize = 1024;

/// The store shared by the runs of one process.
pub type SharedStore = Arc<Mutex<Store>>;

/// How a run went.
#[derive(Debug)]
pub struct Outcome {
    pub record: RunRecord,
    /// The last few KiB of redacted output, for replies.
    pub tail: String,
    /// The run's redactor, for replies that quote the run (`None` when the
    /// run was refused before any secret was opened).
    pub redactor: Option<Arc<Redactor>>,
}

impl Outcome {
    /// The exit status `supervisor run` passes on.
    pub fn exit_code(&self) -> i32 {
        match &self.record.status {
            RunStatus::Interrupted => 128 + libc::SIGINT,
            status => crate::wording::exit_code(status).unwrap_or(EXIT_REFUSED),
        }
    }
}

/// Everything a run needs from the supervisor around it.
#[derive(Clone)]
pub struct Engine {
    pub config: Arc<Config>,
    pub state_dir: PathBuf,
    pub store: SharedStore,
    /// What this host offers for containing agents, probed at start.
    pub host: Arc<Host>,
    /// Whether other supervisors share the store (PostgreSQL): agents'
    /// slots and cron firings are then agreed on through it.
    pub shared: bool,
}

/// Why a run ended, seen from the supervisor.
enum Ending {
    Exited(std::process::ExitStatus),
    TimedOut,
    Interrupted,
    /// The output showed the value of this secret (index in the redactor's names).
    Leaked(usize),
}

/// How [`Engine::begin`] ended: the run refused (and recorded so), or
/// recorded as started with what it needs to go on.
enum Beginning {
    Refused {
        outcome: Box<Outcome>,
        /// The containment's, for the terminal.
        warnings: Vec<String>,
    },
    Started(Box<Begun>),
}

/// A run recorded as started, its values open.
struct Begun {
    agent: Agent,
    contain: AgentPlan,
    secrets: Vec<OpenedSecret>,
    redactor: Arc<Redactor>,
    record: RunRecord,
}

impl Engine {
    fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        // A panic while holding the lock cannot leave SQLite half-written
        // (transactions roll back), so a poisoned lock is still usable.
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` with the store on a blocking thread (see [`Engine::off_thread`]).
    pub(crate) async fn with_store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> supervisor_store::Result<T> + Send + 'static,
    ) -> Result<supervisor_store::Result<T>> {
        self.off_thread(move |me| f(&mut me.lock())).await
    }

    /// Runs `work` on a blocking thread: a write lock that another process
    /// holds (up to the busy timeout) never stalls an async thread, and so
    /// never the answers of the daemon's listener. On a single-threaded
    /// runtime (`supervisor run`, one run and nothing else) it runs in
    /// place, sparing a thread hand-off per call.
    async fn off_thread<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Engine) -> T + Send + 'static,
    ) -> Result<T> {
        if single_threaded() {
            return Ok(work(self));
        }
        let me = self.clone();
        tokio::task::spawn_blocking(move || work(&me))
            .await
            .context("a store call did not finish")
    }

    /// The agent and what a run of it would receive, without decrypting anything.
    pub fn plan(&self, req: &TriggerEvent) -> Result<(Agent, Result<Injection, Refusal>)> {
        let agent = self.config.agent(&req.agent).cloned().ok_or_else(|| {
            crate::fail::Failure::new(format!("no agent named `{}` in the config", req.agent))
                .hint(format!("the agents are: {}", self.agent_names()))
        })?;
        let metadata = self.lock().list_secrets()?;
        let ctx = TriggerContext {
            kind: req.kind,
            initiator: req.initiator.as_deref(),
        };
        let decision = scope::resolve(&metadata, &agent, &ctx);
        Ok((agent, decision))
    }

    pub fn agent_names(&self) -> String {
        let names: Vec<&str> = self.config.agents.iter().map(|a| a.name.as_str()).collect();
        if names.is_empty() {
            "none".into()
        } else {
            names.join(", ")
        }
    }

    /// Runs the agent to its end. `stop` resolving (Ctrl-C, shutdown)
    /// terminates the run. Refusals are recorded runs too.
    pub async fn execute(
        &self,
        req: TriggerEvent,
        echo: Echo,
        stop: impl Future<Output = ()>,
        on_start: impl FnOnce(&RunRecord),
    ) -> Result<Outcome> {
        // Everything up to the synced start record in one hop off the async
        // threads: in the daemon each hop costs a thread hand-off.
        let begun = {
            let req = req.clone();
            self.off_thread(move |me| me.begin(&req)).await??
        };
        let Begun {
            agent,
            contain,
            secrets,
            redactor,
            mut record,
        } = match begun {
            Beginning::Refused { outcome, warnings } => {
                warn(&echo, &warnings);
                return Ok(*outcome);
            }
            Beginning::Started(begun) => *begun,
        };
        warn(&echo, &contain.warnings);
        let id = record.id.clone();
        on_start(&record);
        // From here on the run is recorded as running: every failure is
        // recorded as its outcome, never left behind.
        //
        // Nothing below may start while the start record is being synced,
        // though it would save the sync's time. The home and the cgroup
        // (`prepare`) must come after the record: a sweep of leftovers
        // (`recover`) lists them before it reads the store, and would take
        // those of a run not recorded yet for a dead run's. Nor can the
        // spawn wait for the sync at the agent's exec: the clone suspends
        // the spawning thread until the exec (`spawn::process`), which would
        // hold an async thread for as long as the store keeps a commit
        // waiting (its busy timeout is 30 s).
        let home = RunHome::create(&self.state_dir, &id, contain.run_as.as_ref());
        let (result, home) = match home {
            Ok(home) => {
                let result = match sandbox::prepare(
                    &self.host,
                    &contain,
                    &self.config,
                    &agent,
                    &home.path,
                    &id,
                ) {
                    Ok(prepared) => {
                        record.detail["containment"] = prepared.record.clone();
                        self.supervise(
                            &agent,
                            &req,
                            &mut record,
                            &secrets,
                            redactor.clone(),
                            &home,
                            &contain,
                            prepared,
                            echo,
                            stop,
                        )
                        .await
                    }
                    Err(e) => Err(e),
                };
                (result, Some(home))
            }
            Err(e) => (Err(e), None),
        };
        let (tail, leaks) = match result {
            Ok((tail, hits)) => {
                let leaks = leaks(&redactor, &hits, &secrets);
                if !leaks.is_empty() {
                    record.detail["leaks"] = leaks
                        .iter()
                        .map(|l| json!({"name": l.name, "scope": l.scope.kind(), "owner": l.scope.owner(), "version": l.version, "hits": l.hits}))
                        .collect();
                }
                (tail, leaks)
            }
            Err(e) => {
                record.status = RunStatus::Failed { code: EXIT_REFUSED };
                // `supervisor run` shows it from the record, in either mode.
                record.detail["error"] = json!(format!("{e:#}"));
                (String::new(), Vec::new())
            }
        };
        drop(secrets);
        record.ended_at = Some(supervisor_store::now());
        // Every text of the record passes the redactor whole, whatever quoted it.
        redact_json(&redactor, &mut record.detail);
        let finished = record.clone();
        let recording = self.with_store(move |s| {
            s.record_leaks(&finished.id, finished.member.as_deref(), &leaks)?;
            s.finish_run(&finished)
        });
        // The home goes while the end is written on a blocking thread: in the
        // daemon the two overlap. A home left by a crash in between is wiped
        // at the next start, as the run is over (`recover`).
        let wiping = async move {
            if let Some(home) = home {
                home.remove();
            }
        };
        tokio::join!(recording, wiping).0??;
        Ok(Outcome {
            record,
            tail,
            redactor: Some(redactor),
        })
    }

    /// Decides the secrets, plans the containment, opens the values and
    /// records the run as started (synced), or records its refusal. Blocks
    /// on the store: see [`Engine::off_thread`].
    fn begin(&self, req: &TriggerEvent) -> Result<Beginning> {
        let (agent, decision) = self.plan(req)?;
        let mut record = new_record(req);
        let injection = match decision {
            Ok(i) => i,
            Err(refusal) => return self.refused(record, refusal.to_string(), Vec::new()),
        };
        let contain = sandbox::plan(&agent, &self.config, &self.host);
        if let Some(reason) = contain.refusal.as_ref().or(contain.unavailable.as_ref()) {
            return self.refused(record, reason.clone(), contain.warnings);
        }
        // A value that does not open (a row altered, moved or restored from
        // an older copy) refuses the run; the error names the secret, never
        // a value.
        // Bound first: the store's lock must be released before a refusal
        // below takes it again.
        let opened = self.lock().open_secrets(&injection.keys());
        let secrets = match opened {
            Ok(s) => s,
            Err(
                e @ (supervisor_store::StoreError::Tampered { .. }
                | supervisor_store::StoreError::Evidence(_)),
            ) => {
                return self.refused(record, e.to_string(), contain.warnings);
            }
            Err(e) => return Err(e.into()),
        };
        let redactor = crate::redact::shared(secrets.iter().map(|s| (s.name.as_str(), &s.value)));
        record.detail = json!({
            "injected": injection.secrets,
            "missing": injection.missing,
            "not_redacted": redactor.too_short(),
            // Redacted whole, then cut: a cut first could leave the start of a value.
            "prompt": req.prompt.as_deref().map(|p| truncate(&redactor.redact_text(p), PROMPT_KEPT)),
        });
        if let Some(d) = &req.delivery {
            record.detail["delivery"] = json!(d);
        }
        // On disk (synced) before the agent starts: the evidence of which
        // secrets went to which run.
        let audit = json!({
            "run": record.id,
            "agent": agent.name,
            "trigger": record.trigger,
            "injected": injection.secrets.iter().map(|s| json!({"name": s.name, "scope": s.scope.kind(), "owner": s.owner, "version": s.version})).collect::<Vec<_>>(),
        });
        self.lock().start_run(&record, &audit)?;
        Ok(Beginning::Started(Box::new(Begun {
            agent,
            contain,
            secrets,
            redactor,
            record,
        })))
    }

    fn refused(
        &self,
        record: RunRecord,
        reason: String,
        warnings: Vec<String>,
    ) -> Result<Beginning> {
        Ok(Beginning::Refused {
            outcome: Box::new(self.refuse(record, reason)?),
            warnings,
        })
    }

    /// Records a run refused before it was planned (a full queue, a shutdown).
    pub fn record_refusal(&self, req: &TriggerEvent, reason: String) -> Result<Outcome> {
        self.refuse(new_record(req), reason)
    }

    fn refuse(&self, mut record: RunRecord, reason: String) -> Result<Outcome> {
        record.status = RunStatus::Rejected { reason };
        record.ended_at = Some(supervisor_store::now());
        let audit = json!({ "run": record.id, "agent": record.agent, "trigger": record.trigger, "reason": record.status });
        self.lock().start_run(&record, &audit)?;
        Ok(Outcome {
            record,
            tail: String::new(),
            redactor: None,
        })
    }

    /// Starts the agent and watches it to its end. Whatever happens after the
    /// spawn, every process of the run is killed before this returns.
    #[allow(clippy::too_many_arguments)]
    async fn supervise(
        &self,
        agent: &Agent,
        req: &TriggerEvent,
        record: &mut RunRecord,
        secrets: &[OpenedSecret],
        redactor: Arc<Redactor>,
        home: &RunHome,
        contain: &AgentPlan,
        mut prepared: Prepared,
        echo: Echo,
        stop: impl Future<Output = ()>,
    ) -> Result<(String, Vec<u64>)> {
        let plain = env::plain_env(
            agent,
            &home.path,
            &env::RunVars {
                run_id: &record.id,
                agent: &agent.name,
                trigger: &record.trigger,
                member: record.member.as_deref(),
                prompt: req.prompt.as_deref(),
            },
        );
        let secret_env: Vec<(String, &secrecy::SecretString)> = secrets
            .iter()
            .map(|s| (s.name.to_string(), &s.value))
            .collect();
        let spec = ChildSpec {
            argv: &agent.command,
            env: &plain,
            secrets: &secret_env,
            working_dir: agent.working_dir.as_deref(),
            run_as: contain.run_as.as_ref(),
            confine: Some(&prepared.confinement),
        };
        // Registered as a leader for as long as `_leader` lives: the daemon
        // reaps orphans, and this one is its `Child`'s.
        let spawned = crate::reaper::spawn(&spec);
        let tracked = Tracked {
            pgid: spawned
                .as_ref()
                .ok()
                .and_then(|(c, _)| c.id())
                .map_or(0, |p| p as i32),
            cgroup: prepared.cgroup.take(),
            run_as: contain.run_as.clone(),
            adopts_orphans: self.host.adopts_orphans,
        };
        let (mut child, _leader) = match spawned {
            Ok(c) => c,
            Err(e) => {
                tracked.finish().await;
                let code = match &e {
                    spawn::SpawnError::NotFound { .. } => EXIT_NOT_FOUND,
                    e if e.program_unavailable() => EXIT_CANNOT_EXECUTE,
                    _ => EXIT_REFUSED,
                };
                // `supervisor run` shows it from the record, in either mode.
                let message = format!("the agent could not be started: {e}");
                record.status = RunStatus::Failed { code };
                record.detail["error"] = json!(message);
                return Ok((String::new(), Vec::new()));
            }
        };
        drop(prepared);
        // The agent is starting on its own: build the redactor meanwhile,
        // before its first output needs it.
        redactor.prepare();
        let (over, over_rx) = drain::over();
        let result = self
            .watch(
                agent, req, record, redactor, &mut child, &tracked, echo, stop, over_rx, &over,
            )
            .await;
        // Nothing of the run outlives it, also when watching it failed.
        tracked.finish().await;
        over.send_replace(true);
        if result.is_err() {
            let _ = child.wait().await;
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn watch(
        &self,
        agent: &Agent,
        req: &TriggerEvent,
        record: &mut RunRecord,
        redactor: Arc<Redactor>,
        child: &mut spawn::Child,
        tracked: &Tracked,
        echo: Echo,
        stop: impl Future<Output = ()>,
        over_rx: tokio::sync::watch::Receiver<bool>,
        over: &tokio::sync::watch::Sender<bool>,
    ) -> Result<(String, Vec<u64>)> {
        // The run context goes to stdin from its own task: an agent that never
        // reads it must not block the run.
        let context = json!({
            "run_id": record.id,
            "agent": agent.name,
            "trigger": record.trigger,
            "member": record.member,
            "prompt": req.prompt,
            "source": req.source,
        });
        if let Some(mut stdin) = child.stdin.take() {
            let mut doc = serde_json::to_vec(&context)?;
            doc.push(b'\n');
            tokio::spawn(async move {
                let _ = stdin.write_all(&doc).await;
            });
        }

        let log = open_log(&self.state_dir, &record.id)?;
        let stdout = child.stdout.take().context("agent stdout")?;
        let stderr = child.stderr.take().context("agent stderr")?;
        let (leak_tx, leak_rx) = oneshot::channel();
        let fail_on_leak = agent.on_leak == OnLeak::Fail;
        let terminal = matches!(echo, Echo::Terminal);
        let writer = tokio::spawn(output::pump(
            drain::Drained::new(stdout, over_rx.clone()),
            drain::Drained::new(stderr, over_rx),
            redactor.clone(),
            log,
            agent.log_limit,
            output::Sinks {
                echo,
                extra: Vec::new(),
            },
            fail_on_leak.then_some(leak_tx),
        ));

        let ending = tokio::select! {
            status = child.wait() => Ending::Exited(status?),
            () = tokio::time::sleep(agent.timeout) => Ending::TimedOut,
            () = stop => Ending::Interrupted,
            Ok(secret) = leak_rx, if fail_on_leak => Ending::Leaked(secret),
        };
        let status = match ending {
            Ending::Exited(status) => {
                // Nothing of the run may outlive its leader.
                tracked.end().await;
                record.status = status_of(status);
                status
            }
            Ending::TimedOut | Ending::Interrupted | Ending::Leaked(_) => {
                let status = spawn::terminate(child, tracked, agent.kill_grace).await?;
                record.status = match ending {
                    Ending::TimedOut => RunStatus::TimedOut,
                    Ending::Leaked(secret) => {
                        let secret = redactor.names()[secret].clone();
                        if terminal {
                            eprintln!(
                                "error: the agent printed the value of {secret} (redacted); it was stopped, as its `on_leak = \"fail\"` says"
                            );
                        }
                        RunStatus::Leaked { secret }
                    }
                    _ => RunStatus::Interrupted,
                };
                status
            }
        };
        // Every process of the run is gone: what is left in the pipes is read,
        // then the readers stop, even if something outside still holds them.
        over.send_replace(true);
        // How the agent's own process ended, in numbers (the run's status
        // says why: a timeout's SIGTERM, for one).
        record.detail["exit"] = {
            use std::os::unix::process::ExitStatusExt;
            json!({ "code": status.code(), "signal": status.signal() })
        };
        let written = writer.await.context("the run log writer failed")?;
        record.redactions = written.redactions();
        record.log_bytes = written.log_bytes;
        if written.cut {
            record.detail["log_cut"] = json!(true);
        }
        if let Some(e) = written.log_error {
            record.detail["log_error"] = json!(e);
        }
        Ok((
            String::from_utf8_lossy(&written.tail).into_owned(),
            written.hits,
        ))
    }
}

/// The containment's warnings, on the terminal of a local run.
fn warn(echo: &Echo, warnings: &[String]) {
    if matches!(echo, Echo::Terminal) {
        for w in warnings {
            eprintln!("warning: {w}");
        }
    }
}

/// Whether the current runtime has one thread (nothing else to keep going).
fn single_threaded() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread)
}

/// Where run logs live.
pub fn log_path(state_dir: &Path, id: &str) -> PathBuf {
    state_dir.join("runs").join(format!("{id}.log"))
}

fn open_log(state_dir: &Path, id: &str) -> Result<std::fs::File> {
    let dir = state_dir.join("runs");
    supervisor_store::ensure_private_dir(&dir)?;
    let path = log_path(state_dir, id);
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("creating the run log {}", path.display()))
}
