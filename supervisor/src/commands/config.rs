//! `supervisor config check`.

use anyhow::Result;

use crate::context::Context;
use crate::fail::Failure;

pub fn check(ctx: &Context) -> Result<()> {
    let c = &ctx.config;
    // The config crate leaves cron expressions and time zones as text; the
    // triggers crate parses them, as the daemon will.
    let broken = supervisor_triggers::validate_schedules(c);
    if !broken.is_empty() {
        for (name, e) in &broken {
            eprintln!("{}: schedule `{name}`: {e}", c.path.display());
        }
        return Err(Failure::new(format!(
            "the config has {} schedule problem(s)",
            broken.len()
        ))
        .hint("`supervisor schedules` shows each schedule's next firings once it parses")
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
    for (i, a) in c.agents.iter().enumerate() {
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
