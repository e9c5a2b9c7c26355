//! `supervisor config check`: every problem of the file at once (with
//! schedules' expressions and time zones), then a summary with what this
//! host offers for containing each agent. Exits 1 on any problem, or when
//! an agent could not run here.

use anyhow::Result;
use serde::Serialize;
use serde_json::json;
use supervisor_config::ConfigError;

use super::print;
use crate::cli::Global;
use crate::context::Context;
use crate::fail::Failure;
use crate::sandbox::{self, AgentPlan, Host, Role};

/// What `--json` prints for a config that reads.
#[derive(Serialize)]
struct Summary {
    path: String,
    valid: bool,
    problems: Vec<serde_json::Value>,
    team: String,
    state_dir: String,
    /// Where commands go (`null`: local mode).
    socket: Option<String>,
    members: Vec<serde_json::Value>,
    agents: Vec<serde_json::Value>,
    /// What this host offers, as the text lines say it.
    containment: Vec<String>,
    warnings: Vec<String>,
    schedules: Vec<serde_json::Value>,
}

pub fn check(global: &Global, json: bool) -> Result<u8> {
    let ctx = match Context::load_checked(global) {
        Ok(ctx) => ctx,
        Err(e) if json => {
            let Some(ConfigError::Invalid { path, problems }) = e.downcast_ref::<ConfigError>()
            else {
                return Err(e);
            };
            let file = path.display().to_string();
            // The summary's fields are there too, null: nothing of a config
            // that does not read is summarised.
            print::json(&json!({
                "path": file,
                "valid": false,
                "problems": problems.iter().map(|p| json!({
                    "file": file, "line": p.line, "column": p.column,
                    "message": p.message, "hint": p.hint,
                })).collect::<Vec<_>>(),
                "team": null, "state_dir": null, "socket": null, "members": null,
                "agents": null, "containment": null, "warnings": null, "schedules": null,
            }))?;
            return Ok(1);
        }
        Err(e) => return Err(e),
    };
    let c = &ctx.config;
    let host = Host::probe(c, &ctx.state_dir, &ctx.key_file, Role::Check);
    let plans: Vec<AgentPlan> = c
        .agents
        .iter()
        .map(|a| sandbox::plan(a, c, &host))
        .collect();
    let refusals: Vec<&String> = plans.iter().filter_map(|p| p.refusal.as_ref()).collect();
    if json {
        print::json(&summary(&ctx, &host, &plans))?;
        return Ok(if refusals.is_empty() { 0 } else { 1 });
    }
    for r in &refusals {
        eprintln!("{}: {r}", c.path.display());
    }
    if !refusals.is_empty() {
        return Err(Failure::new(format!(
            "{} agent(s) could not run on this host",
            refusals.len()
        ))
        .hint("each line above names the agent and what to change")
        .into());
    }
    print_summary(&ctx, &host, &plans);
    Ok(0)
}

fn summary(ctx: &Context, host: &Host, plans: &[AgentPlan]) -> Summary {
    let c = &ctx.config;
    Summary {
        path: c.path.display().to_string(),
        valid: true,
        problems: Vec::new(),
        team: c.team.name.clone(),
        state_dir: ctx.state_dir.display().to_string(),
        socket: c
            .server
            .control_socket
            .as_ref()
            .map(|s| s.display().to_string()),
        members: c
            .members
            .iter()
            .map(|m| json!({ "name": m.name, "admin": m.admin }))
            .collect(),
        agents: c
            .agents
            .iter()
            .zip(plans)
            .map(|(a, plan)| {
                json!({
                    "name": a.name,
                    "triggers": a.triggers,
                    "secrets": a.secrets.as_ref().map(|l| l.iter().map(|s| s.as_str()).collect::<Vec<_>>()),
                    "user": plan.user,
                    "layers": plan.layers(),
                    "refusal": plan.refusal,
                    "warnings": plan.warnings,
                })
            })
            .collect(),
        containment: host.lines(),
        warnings: plans.iter().flat_map(|p| p.warnings.clone()).collect(),
        schedules: c
            .schedules
            .iter()
            .map(|s| json!({ "name": s.name, "cron": s.cron, "timezone": s.timezone, "agent": s.agent }))
            .collect(),
    }
}

fn print_summary(ctx: &Context, host: &Host, plans: &[AgentPlan]) {
    let c = &ctx.config;
    println!("config {} is valid", c.path.display());
    println!("  team     {}", c.team.name);
    println!("  state    {}", ctx.state_dir.display());
    match &c.store.url {
        None => println!(
            "  store    SQLite, {}",
            ctx.state_dir.join(supervisor_store::DB_FILE).display()
        ),
        Some(reference) => {
            let source = match reference {
                supervisor_config::SecretRef::File(p) => format!("the file {}", p.display()),
                supervisor_config::SecretRef::Env(n) => format!("${n}"),
                supervisor_config::SecretRef::Credential(n) => format!("the credential {n}"),
            };
            println!(
                "  store    PostgreSQL, shared by every node on it; url from {source}; lease {}s",
                c.store.lease().as_secs()
            );
        }
    }
    match &c.server.control_socket {
        Some(socket) => println!(
            "  socket   {} (commands go to the daemon there)",
            socket.display()
        ),
        None => println!("  socket   none (commands open the store themselves: local mode)"),
    }
    let members: Vec<String> = c
        .members
        .iter()
        .map(|m| {
            if m.admin {
                format!("{} (admin)", m.name)
            } else {
                m.name.clone()
            }
        })
        .collect();
    println!(
        "  members  {}",
        if members.is_empty() {
            "none".into()
        } else {
            members.join(", ")
        }
    );
    if c.agents.is_empty() {
        println!("  agents   none");
    }
    for (i, (a, plan)) in c.agents.iter().zip(plans).enumerate() {
        let triggers: Vec<&str> = a.triggers.iter().map(|t| t.as_str()).collect();
        let secrets = match &a.secrets {
            None => "all in scope".to_owned(),
            Some(list) => list
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        };
        println!(
            "  {}{} [{}] secrets: {}",
            if i == 0 { "agents   " } else { "         " },
            a.name,
            triggers.join(", "),
            secrets
        );
        println!(
            "           as {}; contained by: {}",
            plan.user.as_deref().unwrap_or("the supervisor's own user"),
            if plan.layers().is_empty() {
                "nothing".to_owned()
            } else {
                plan.layers().join(", ")
            }
        );
    }
    println!("  containment (as seen by this process)");
    for line in host.lines() {
        println!("    {line}");
    }
    if matches!(c.sandbox.cgroup, supervisor_config::CgroupSetting::Auto) {
        println!("    (`serve` also looks for a cgroup systemd delegated to it)");
    }
    for w in plans.iter().flat_map(|p| &p.warnings) {
        eprintln!("warning: {w}");
    }
    for (i, s) in c.schedules.iter().enumerate() {
        println!(
            "  {}{} `{}` ({}) -> {}",
            if i == 0 { "schedules " } else { "          " },
            s.name,
            s.cron,
            s.timezone,
            s.agent
        );
    }
}
