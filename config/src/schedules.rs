//! The `[[schedules]]` section: runs started by the clock.
//!
//! This crate checks what it can without a cron parser or a time zone
//! database: names, the agent and whether it accepts cron triggers. The
//! expression and the time zone stay strings here; the triggers crate parses
//! them (and reports their errors by schedule name).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::load::{Agent, TriggerKind, Validator};
use crate::names::validate_member_name;
use crate::raw::RawSchedule;

/// The time zone of a schedule that names none.
pub const DEFAULT_TIMEZONE: &str = "UTC";

/// What a schedule does when it fires while its previous run is still alive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Overlap {
    /// Drop this firing; the next one tries again.
    #[default]
    Skip,
    /// Start it once the previous run has ended.
    Queue,
    /// Start it at once, next to the previous run.
    Allow,
}

impl Overlap {
    pub fn as_str(self) -> &'static str {
        match self {
            Overlap::Skip => "skip",
            Overlap::Queue => "queue",
            Overlap::Allow => "allow",
        }
    }
}

impl std::fmt::Display for Overlap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A run of one agent started at the times of a crontab expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub name: String,
    /// Crontab syntax as written: 5 fields, 6 with seconds first, or an
    /// `@daily`-style shorthand. Not yet parsed: see the triggers crate.
    pub cron: String,
    /// IANA time zone name the expression is read in (`UTC` by default).
    /// Not yet checked: see the triggers crate.
    pub timezone: String,
    /// The agent to start; it exists and accepts cron triggers.
    pub agent: String,
    /// Free text handed to the agent.
    pub prompt: Option<String>,
    pub overlap: Overlap,
}

impl Validator<'_> {
    pub(crate) fn schedules(&mut self, raw: Vec<RawSchedule>, agents: &[Agent]) -> Vec<Schedule> {
        let mut names = HashSet::new();
        let mut out = Vec::new();
        for s in raw {
            if let Err(e) = validate_member_name(s.name.get_ref()) {
                let message = e.to_string().replace("member name", "schedule name");
                self.report(&s.name, message, None);
            }
            if !names.insert(s.name.get_ref().clone()) {
                self.report(
                    &s.name,
                    format!("a schedule named `{}` is defined twice", s.name.get_ref()),
                    Some("give each [[schedules]] entry its own name"),
                );
            }
            match agents.iter().find(|a| &a.name == s.agent.get_ref()) {
                None => self.report(
                    &s.agent,
                    format!(
                        "schedule `{}` names agent `{}`, which is not defined",
                        s.name.get_ref(),
                        s.agent.get_ref()
                    ),
                    Some("define the agent in [[agents]] or correct the name"),
                ),
                Some(agent) if !agent.allows(TriggerKind::Cron) => {
                    let mut triggers: Vec<&str> =
                        agent.triggers.iter().map(|t| t.as_str()).collect();
                    triggers.push("cron");
                    let hint = format!(
                        "add \"cron\" to the agent's triggers: triggers = [{}]",
                        triggers
                            .iter()
                            .map(|t| format!("\"{t}\""))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    self.report(
                        &s.agent,
                        format!(
                            "schedule `{}` starts agent `{}`, which does not accept cron triggers",
                            s.name.get_ref(),
                            s.agent.get_ref()
                        ),
                        Some(&hint),
                    );
                }
                Some(_) => {}
            }
            out.push(Schedule {
                name: s.name.into_inner(),
                cron: s.cron,
                timezone: s.timezone.unwrap_or_else(|| DEFAULT_TIMEZONE.to_owned()),
                agent: s.agent.into_inner(),
                prompt: s.prompt,
                overlap: s.overlap,
            });
        }
        out
    }
}
