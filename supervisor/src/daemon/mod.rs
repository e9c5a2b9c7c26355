//! `supervisor serve`: the long-lived service, and the only process of a
//! team's host that holds the key. One tokio runtime runs the control
//! socket, the HTTP listener, the cron schedules and every run through one
//! [`Runner`].
//!
//! Life cycle: runs a crashed daemon left `running` become `lost`; READY=1
//! once the control socket and the HTTP listener are bound; SIGHUP reloads
//! the config (a bad one is logged and the old one kept); SIGTERM or SIGINT
//! stops accepting, stops the schedules, gives running runs `[server]
//! shutdown_grace`, stops the rest (recorded `interrupted`) and exits 0.

mod claims;
pub mod client;
pub mod control;
mod hooks;
mod http;
mod lease;
mod linear;
mod metrics;
mod notify;
pub mod peer;
mod resume;
pub mod runner;
mod schedule;
mod session;
mod slack;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context as _, Result};
use secrecy::SecretString;
use serde_json::json;
use supervisor_config::Config;
use supervisor_store::Deliveries;
use tokio::signal::unix::{SignalKind, signal};

use crate::cli::Global;
use crate::context::Context;
use crate::credentials;
use crate::run::Engine;
use crate::sandbox::{Host, Role};
use metrics::Metrics;
use runner::Runner;
use schedule::Scheduler;

/// How long, at shutdown, clients of the control socket have to take the
/// answers still due to them once the runs are over.
const CLIENTS_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// The supervisor's own credentials for the trigger sources, read at start
/// and at each reload.
#[derive(Default)]
pub struct Credentials {
    pub slack_signing_secret: Option<SecretString>,
    pub slack_bot_token: Option<SecretString>,
    pub linear_webhook_secret: Option<SecretString>,
    pub linear_api_key: Option<SecretString>,
    /// By webhook name.
    pub webhooks: HashMap<String, SecretString>,
}

impl Credentials {
    /// Reads every credential the config refers to; any failure fails the
    /// whole load, so a daemon never runs with a half-read set.
    pub fn load(config: &Config) -> Result<Credentials> {
        let mut c = Credentials::default();
        if let Some(s) = &config.slack {
            c.slack_signing_secret = Some(credentials::resolve(
                &s.signing_secret,
                "[slack] signing_secret",
            )?);
            c.slack_bot_token = Some(credentials::resolve(&s.bot_token, "[slack] bot_token")?);
        }
        if let Some(l) = &config.linear {
            c.linear_webhook_secret = Some(credentials::resolve(
                &l.webhook_secret,
                "[linear] webhook_secret",
            )?);
            c.linear_api_key = Some(credentials::resolve(&l.api_key, "[linear] api_key")?);
        }
        for w in &config.webhooks {
            let what = format!("the secret of webhook `{}`", w.name);
            c.webhooks
                .insert(w.name.clone(), credentials::resolve(&w.secret, &what)?);
        }
        Ok(c)
    }
}

/// What the HTTP handlers share.
pub struct Daemon {
    pub runner: Arc<Runner>,
    pub started: Instant,
    config: Mutex<(Arc<Config>, Arc<Credentials>)>,
    /// Claimed deliveries, in their own database file (see
    /// `supervisor_store::Deliveries`); used only on blocking threads.
    deliveries: Arc<claims::Claims>,
}

impl Daemon {
    /// The config and the credentials as of the last (re)load, taken
    /// together: a reload between two reads cannot mix them.
    pub fn current(&self) -> (Arc<Config>, Arc<Credentials>) {
        self.config
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn config(&self) -> Arc<Config> {
        self.current().0
    }

    pub fn credentials(&self) -> Arc<Credentials> {
        self.current().1
    }

    /// Drops `source`'s claims older than `ttl_secs`, then claims a
    /// delivery known by `keys` (on disk when this returns), with its work
    /// (the verified body, and `meta` to check it again) kept until its run
    /// is recorded; `false` when one of the keys was claimed within
    /// `ttl_secs`. Runs on a blocking thread, never on the caller's.
    pub async fn prune_and_claim_delivery(
        &self,
        source: &str,
        keys: &[String],
        ttl_secs: u64,
        meta: &serde_json::Value,
        body: &axum::body::Bytes,
    ) -> Result<bool> {
        let (deliveries, source, keys) =
            (self.deliveries.clone(), source.to_owned(), keys.to_vec());
        let (meta, body) = (meta.to_string(), body.clone());
        tokio::task::spawn_blocking(move || {
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            let now = chrono::Utc::now().timestamp();
            deliveries.with(|d| d.claim_work(&source, &keys, now, ttl_secs as i64, &meta, &body))
        })
        .await
        .context("the delivery claim did not finish")?
        .map_err(Into::into)
    }

    /// Gives a claim back, so that the sender's retry is accepted.
    pub async fn release_delivery(&self, source: &str, keys: &[String]) -> Result<()> {
        let (deliveries, source, keys) =
            (self.deliveries.clone(), source.to_owned(), keys.to_vec());
        tokio::task::spawn_blocking(move || {
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            deliveries.with(|d| d.release(&source, &keys))
        })
        .await
        .context("the delivery release did not finish")?
        .map_err(Into::into)
    }

    /// Each schedule with its next firing, for `/healthz`.
    fn schedules_summary(&self) -> serde_json::Value {
        let now = chrono::Utc::now();
        let list: Vec<serde_json::Value> = self
            .config()
            .schedules
            .iter()
            .map(|s| {
                let next = supervisor_triggers::CronSchedule::from_config(s)
                    .ok()
                    .and_then(|c| c.next_after(now))
                    .map(|t| t.to_rfc3339());
                json!({ "name": s.name, "agent": s.agent, "next": next })
            })
            .collect();
        json!(list)
    }
}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn serve(global: &Global) -> Result<()> {
    let ctx = Context::load_checked(global)?;
    crate::logging::init(&ctx.config.server.log);
    // Worker threads live as long as the runtime: agents spawned from them
    // keep their parent-death signal until the daemon exits.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // Before the first run, and before any thread of the runtime exists: this
    // may move the process into a cgroup leaf of its own.
    let host = Host::probe(&ctx.config, &ctx.state_dir, &ctx.key_file, Role::Daemon);
    runtime.block_on(run(global, ctx, host))
}

async fn run(global: &Global, ctx: Context, host: Host) -> Result<()> {
    for line in host.lines() {
        tracing::info!("containment: {line}");
    }
    check_containment(&ctx.config, &host)?;
    // Bound before any run can start, so that every agent's cover hides it.
    let socket = match control::socket_path(ctx.config.server.control_socket.as_deref()) {
        Some(path) => Some(control::ControlSocket::bind(&path)?),
        None => None,
    };
    let host = host.reloaded(&ctx.config, &ctx.state_dir, &ctx.key_file);
    // Whatever an agent leaves behind stays our descendant: the control
    // socket refuses descendants, and we reap them.
    crate::reaper::become_subreaper().context("becoming the reaper of agents' orphans")?;
    tokio::spawn(reap_orphans());
    let location = ctx.location()?;
    let mut store = ctx.store(true)?;
    // On a shared store this node holds a lease from now on: what it
    // records and claims is its own while it renews it.
    let lease = store.lease();
    if lease.is_some() {
        store.heartbeat()?;
    }
    let mut deliveries = Deliveries::open_at(&location, &ctx.state_dir)?;
    let taken = deliveries.take_over(&mut store)?;
    if taken > 0 {
        tracing::info!(
            claims = taken,
            "delivery claims moved to their own database"
        );
    }
    let lost = crate::run::recover::recover(&mut store, &ctx.state_dir, &host.cgroups)?;
    if !lost.is_empty() {
        tracing::warn!(runs = ?lost, "runs left running by a previous supervisor are now marked lost");
    }
    let config = Arc::new(ctx.config.clone());
    let credentials = Arc::new(Credentials::load(&config)?);
    let engine = Engine {
        config: config.clone(),
        state_dir: ctx.state_dir.clone(),
        shared: store.is_shared(),
        store: Arc::new(Mutex::new(store)),
        host: Arc::new(host),
    };
    let deliveries = Arc::new(claims::Claims::open(deliveries, &location, &ctx.state_dir)?);
    let runner = Runner::new(
        engine.clone(),
        Arc::new(Metrics::default()),
        Some(deliveries.clone()),
    );
    let daemon = Arc::new(Daemon {
        runner: runner.clone(),
        started: Instant::now(),
        config: Mutex::new((config.clone(), credentials)),
        deliveries,
    });
    // Deliveries answered by a daemon that died before their runs were
    // recorded: taken up again before anything new is accepted.
    resume::pending(&daemon).await;
    // Several nodes: renew the lease, take over what dead nodes left.
    let keeper = match lease {
        Some(lease) => Some(lease::Keeper::start(&ctx, lease, daemon.clone())?),
        None => None,
    };

    let server = &config.server;
    let socket_note = match &socket {
        Some(s) => format!("control socket {}", s.path().display()),
        None => "no control socket (CLI commands use local mode)".to_owned(),
    };
    let (stop_control, control_stopped) = tokio::sync::oneshot::channel::<()>();
    let control = socket.map(|mut socket| {
        let daemon = daemon.clone();
        tokio::spawn(async move {
            let stopped = async {
                let _ = control_stopped.await;
            };
            socket.serve(daemon, stopped).await;
        })
    });
    let listener = tokio::net::TcpListener::bind(server.listen)
        .await
        .with_context(|| format!("listening on {}", server.listen))?;
    let addr = listener.local_addr()?;
    let app = http::router(daemon.clone(), server.body_limit as usize);
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let http = http::spawn_listener(
        listener,
        app,
        async {
            let _ = http_stopped.await;
        },
        server.shutdown_grace,
    )?;
    let mut scheduler = Scheduler::start(&config.schedules, &runner);
    tokio::spawn(notify::watchdog());

    let summary = format!(
        "listening on {addr}; {socket_note}; {} agents, {} schedules",
        config.agents.len(),
        config.schedules.len()
    );
    tracing::info!("{summary}");
    notify::ready(&summary);

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => match Context::load_checked(global).and_then(|new| {
                let host = engine.host.reloaded(&new.config, &new.state_dir, &new.key_file);
                check_containment(&new.config, &host)?;
                let credentials = Credentials::load(&new.config)?;
                Ok((new, credentials, host))
            }) {
                Ok((new, credentials, host)) => {
                    let new_config = Arc::new(new.config);
                    if new_config.server != daemon.config().server {
                        tracing::warn!("[server] changes take effect at the next restart");
                    }
                    scheduler.stop();
                    scheduler = Scheduler::start(&new_config.schedules, &runner);
                    runner.replace_engine(Engine { config: new_config.clone(), host: Arc::new(host), ..engine.clone() });
                    *daemon.config.lock().unwrap_or_else(|p| p.into_inner()) = (new_config.clone(), Arc::new(credentials));
                    let msg = format!("config reloaded: {} agents, {} schedules", new_config.agents.len(), new_config.schedules.len());
                    tracing::info!("{msg}");
                    notify::status(&msg);
                }
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "config reload failed; keeping the running config");
                    notify::status("config reload failed; running the previous config");
                }
            },
        }
    }

    tracing::info!("shutting down");
    notify::stopping();
    scheduler.stop();
    let _ = stop_http.send(());
    // No new requests; runs that clients follow end with the others, and
    // their clients get that end (unless they stopped reading).
    let _ = stop_control.send(());
    runner.shutdown(config.server.shutdown_grace).await;
    if let Some(keeper) = keeper {
        keeper.leave().await;
    }
    if let Some(control) = control
        && tokio::time::timeout(CLIENTS_GRACE, control).await.is_err()
    {
        tracing::warn!("some control socket clients did not take their answers in time");
    }
    http.await;
    tracing::info!("stopped");
    Ok(())
}

/// Reaps the orphans agents leave behind, as they exit and every few
/// seconds (a signal may stand for several exits).
async fn reap_orphans() {
    let mut exits = match signal(SignalKind::child()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "no SIGCHLD stream; orphans are reaped every few seconds");
            None
        }
    };
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        match &mut exits {
            Some(exits) => tokio::select! {
                _ = exits.recv() => {}
                _ = tick.tick() => {}
            },
            None => {
                tick.tick().await;
            }
        }
        crate::reaper::reap_orphans();
    }
}

/// Refuses a config with an agent that nothing would keep from the key and
/// the store on this host (or whose policy cannot be enforced), as `config
/// check` does; logs what each agent lacks.
fn check_containment(config: &Config, host: &Host) -> Result<()> {
    let mut refusals = Vec::new();
    for agent in &config.agents {
        let plan = crate::sandbox::plan(agent, config, host);
        for w in &plan.warnings {
            tracing::warn!("{w}");
        }
        refusals.extend(plan.refusal);
    }
    if refusals.is_empty() {
        return Ok(());
    }
    Err(crate::fail::Failure::new(refusals.join("\n"))
        .hint("`supervisor config check` shows what this host offers each agent")
        .into())
}
