//! Local mode: this process opens the store (and the key, when a request
//! needs it) and executes the requests itself, with the same handlers and
//! rules as the daemon, as the user running it.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Result;
use supervisor_protocol::{Reply, Request};

use crate::context::Context;
use crate::control::{self, Caller, Output, handlers};
use crate::fail::Failure;
use crate::run::{Echo, Engine};
use crate::sandbox::{Host, Role};

pub struct Local {
    ctx: Context,
    /// Chosen with `--local` (rather than for want of a socket).
    forced: bool,
    engine: Option<Engine>,
    unlocked: bool,
}

impl Local {
    pub fn new(ctx: Context, forced: bool) -> Local {
        Local {
            ctx,
            forced,
            engine: None,
            unlocked: false,
        }
    }

    pub fn mode(&self) -> String {
        let why = if self.forced {
            "--local"
        } else {
            "no control socket is configured"
        };
        format!(
            "local mode ({why}): this process opens the store in {} itself",
            self.ctx.state_dir.display()
        )
    }

    /// The engine over the store, unlocked with the master key when `key`.
    fn engine(&mut self, key: bool) -> Result<&Engine> {
        if self.engine.is_none() {
            self.check_access()?;
            let store = self.ctx.store(key)?;
            self.unlocked = key;
            self.engine = Some(Engine {
                shared: store.is_shared(),
                config: Arc::new(self.ctx.config.clone()),
                state_dir: self.ctx.state_dir.clone(),
                store: Arc::new(Mutex::new(store)),
                // Requests that plan runs without starting any.
                host: Arc::new(Host::inert()),
            });
        } else if key && !self.unlocked {
            let master = self.ctx.key()?;
            if let Some(engine) = &self.engine {
                engine
                    .store
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .unlock(&master)?;
            }
            self.unlocked = true;
        }
        Ok(self.engine.as_ref().expect("opened above"))
    }

    /// On a host where the daemon owns the state, say so plainly (the store
    /// would only report that it found nothing).
    fn check_access(&self) -> Result<()> {
        let dir = &self.ctx.state_dir;
        match std::fs::read_dir(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(Failure::new(
                format!(
                    "you may not open the state directory {} (permission denied)",
                    dir.display()
                ),
            )
            .hint(match &self.ctx.config.server.control_socket {
                Some(socket) => format!(
                    "on this host the daemon holds the store: leave out --local, and your commands go to it on {}",
                    socket.display()
                ),
                None => "local mode needs the user who owns the state directory and the key".to_owned(),
            })
            .into()),
            _ => Ok(()),
        }
    }

    pub fn call(&mut self, request: Request, out: &mut dyn Output) -> Result<Reply> {
        let caller = Caller::local(&self.ctx.config)?;
        let engine = self.engine(control::needs_key(&request))?;
        control::handle(engine, &caller, request, out)
    }

    /// Runs the agent from this process, output to this terminal.
    pub fn run(&mut self, agent: String, prompt: Option<String>) -> Result<Reply> {
        let caller = Caller::local(&self.ctx.config)?;
        let mut host = Host::probe(
            &self.ctx.config,
            &self.ctx.state_dir,
            &self.ctx.key_file,
            Role::Run,
        );
        if host.cgroups.root().is_none() {
            // One run per process: whatever the agent leaves behind becomes ours
            // to find and kill, even after a double fork.
            host.adopts_orphans = crate::spawn::adopt_orphans().is_ok();
        }
        let engine = Engine {
            host: Arc::new(host),
            ..self.engine(true)?.clone()
        };
        {
            let mut store = engine.store.lock().unwrap_or_else(|p| p.into_inner());
            let lost =
                crate::run::recover::recover(&mut store, &engine.state_dir, &engine.host.cgroups)?;
            if !lost.is_empty() {
                eprintln!(
                    "note: {} run(s) of a supervisor that died are now marked lost",
                    lost.len()
                );
            }
        }
        let req = handlers::run::request(&engine, &caller, agent, prompt)?;
        // One thread: the agent is spawned from this long-lived thread, so its
        // parent-death signal is tied to this process's life.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        // Listen before anything is recorded or started: a Ctrl-C that killed
        // the process in between would leave the run marked running, its home
        // on disk and what the agent started alive.
        let caught = Arc::new(AtomicI32::new(0));
        let stop = {
            let _entered = runtime.enter();
            interrupted(caught.clone())?
        };
        // On a shared store this process is a node while its run goes: it
        // renews its lease, or other nodes would take the run for lost.
        let lease = engine.shared.then(|| {
            let engine = engine.clone();
            runtime.spawn(async move {
                let lease = engine.config.store.lease();
                loop {
                    tokio::time::sleep(lease / 3).await;
                    if let Ok(Err(e)) = engine.with_store(|s| s.heartbeat()).await {
                        eprintln!("warning: could not renew this run's lease: {e}");
                    }
                }
            })
        });
        let outcome = runtime.block_on(engine.execute(req, Echo::Terminal, stop, |_| {}));
        if let Some(task) = lease {
            task.abort();
            let _ = engine
                .store
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .leave();
        }
        let outcome = outcome?;
        let signal = Some(caught.load(Ordering::SeqCst)).filter(|s| *s != 0);
        handlers::run::ended(&outcome.record, outcome.exit_code(), signal)
    }
}

/// Catches SIGINT and SIGTERM from now on; the future resolves on the
/// first and leaves its number in `caught`. Needs a runtime context.
fn interrupted(caught: Arc<AtomicI32>) -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    Ok(async move {
        let signal = tokio::select! {
            _ = int.recv() => libc::SIGINT,
            _ = term.recv() => libc::SIGTERM,
        };
        caught.store(signal, Ordering::SeqCst);
    })
}
