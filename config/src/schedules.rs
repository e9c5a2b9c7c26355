//! The `[[schedules]]` section: runs started by the clock.
//!
//! This crate checks names, the agent and whether it accepts cron
//! triggers. The expression and the time zone stay strings here: a caller
//! with a cron parser and a time zone database (the triggers crate) passes
//! a [`crate::ScheduleCheck`], and their problems are located and reported
//! with the rest, the expression's and the zone's apart.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::agents::Agent;
use crate::load::{TriggerKind, Validator};
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
    /// `@daily`-style shorthand. Parsed only by a [`crate::ScheduleCheck`].
    pub cron: String,
    /// IANA time zone name the expression is read in (`UTC` by default).
    /// Checked only by a [`crate::ScheduleCheck`].
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
            self.agent_ref(agents, &s.agent, TriggerKind::Cron);
            if let Some(check) = self.schedules {
                if let Err(fault) = check.cron(s.cron.get_ref()) {
                    self.report_fault(&s.cron, fault);
                }
                if let Some(zone) = &s.timezone
                    && let Err(fault) = check.timezone(zone.get_ref())
                {
                    self.report_fault(zone, fault);
                }
            }
            out.push(Schedule {
                name: s.name.into_inner(),
                cron: s.cron.into_inner(),
                timezone: s
                    .timezone
                    .map_or_else(|| DEFAULT_TIMEZONE.to_owned(), Spanned::into_inner),
                agent: s.agent.into_inner(),
                prompt: s.prompt,
                overlap: s.overlap,
            });
        }
        out
    }
}
