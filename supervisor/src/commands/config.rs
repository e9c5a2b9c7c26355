//! `supervisor config check`.

use anyhow::Result;

use crate::context::Context;
use crate::fail::Failure;
use crate::sandbox::{self, AgentPlan, Host, Role};

pub fn check(ctx: &Context) -> Result<()> {
    let c = &ctx.config;
    let host = Host::probe(c, &ctx.state_dir, &ctx.key_file, Role::Check);
    let plans: Vec<AgentPlan> = c
        .agents
        .iter()
        .map(|a| sandbox::plan(a, c, &host))
        .collect();
    let refusals: Vec<&String> = plans.iter().filter_map(|p| p.refusal.as_ref()).collect();
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
    println!("config {} is valid", c.path.display());
    println!("  team     {}", c.team.name);
    println!("  state    {}", ctx.state_dir.display());
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
    for (i, (a, plan)) in c.agents.iter().zip(&plans).enumerate() {
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
    Ok(())
}
