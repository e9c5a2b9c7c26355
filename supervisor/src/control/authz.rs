//! Who may do what, decided here and nowhere else, for local mode and the
//! control socket alike:
//!
//! - Every request that reads or changes the store needs a member.
//! - A member manages their own personal secrets. Team secrets, and other
//!   members' personal secrets (`--member`), need an admin; admins may
//!   create, replace and delete them, never read them (nobody can).
//! - `secret list` shows the team's secrets and the caller's own; `--all`
//!   (everyone's, with owners) needs an admin. `scope --member` for someone
//!   else needs an admin, since it names their personal secrets.
//! - Runs start as the caller, with the caller's personal secrets.
//! - `runs list|show|logs` cover the caller's own runs; admins see all
//!   (runs with nobody behind them, as cron's, only admins).
//! - The audit log is for admins.

use anyhow::Result;
use supervisor_config::{Config, Member};
use supervisor_protocol::{ScopeFor, Target, TargetScope};
use supervisor_store::Scope;

use super::Caller;

/// A request the caller may not make. The message says what the rule is;
/// the hint what to do instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Denied {
    pub message: String,
    pub hint: Option<String>,
}

impl Denied {
    fn new(message: impl Into<String>) -> Denied {
        Denied {
            message: message.into(),
            hint: None,
        }
    }

    fn hint(mut self, hint: impl Into<String>) -> Denied {
        self.hint = Some(hint.into());
        self
    }
}

/// Whose records a listing shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visible {
    Everything,
    /// The team's (for secrets) and this member's own.
    Own(String),
}

impl Visible {
    /// Whether a secret with this owner (`None`: a team secret) is shown.
    pub fn secret(&self, owner: Option<&str>) -> bool {
        match self {
            Visible::Everything => true,
            Visible::Own(me) => owner.is_none_or(|o| o == me),
        }
    }

    /// Whether a run with this member behind it (`None`: nobody) is shown.
    pub fn run(&self, member: Option<&str>) -> bool {
        match self {
            Visible::Everything => true,
            Visible::Own(me) => member == Some(me.as_str()),
        }
    }

    /// The member to filter by, if any.
    pub fn member(&self) -> Option<&str> {
        match self {
            Visible::Everything => None,
            Visible::Own(me) => Some(me),
        }
    }
}

/// The member behind the request: every request on the store needs one.
pub fn member<'a>(caller: &'a Caller, config: &Config) -> Result<&'a Member> {
    member_for(caller, config, false)
}

/// [`member`], for a request that only an admin may make when `admin`:
/// the refusal of someone who is no member then shows the entry to add
/// with `admin = true`.
fn member_for<'a>(caller: &'a Caller, config: &Config, admin: bool) -> Result<&'a Member> {
    caller
        .member
        .as_ref()
        .ok_or_else(|| caller.not_a_member(config, admin).into())
}

/// The scope a secret write or delete acts on, if the caller may.
pub fn secret_scope(caller: &Caller, config: &Config, target: &Target) -> Result<Scope> {
    let admin = !matches!(target.scope, TargetScope::Personal { member: None });
    let me = member_for(caller, config, admin)?;
    match &target.scope {
        TargetScope::Team if me.admin => Ok(Scope::Team),
        TargetScope::Team => Err(Denied::new(format!(
            "team secrets are managed by admins, and member `{}` is not one",
            me.name
        ))
        .hint("ask an admin, or store it for yourself with --personal")
        .into()),
        TargetScope::Personal { member: None } => Ok(Scope::Personal(me.name.clone())),
        TargetScope::Personal {
            member: Some(owner),
        } => {
            if owner != &me.name && !me.admin {
                return Err(Denied::new(format!(
                    "only admins manage other members' personal secrets, and member `{}` is not one",
                    me.name
                ))
                .hint(format!(
                    "`{owner}` stores their own; leave out --member to act on yours"
                ))
                .into());
            }
            let owner = config.member(owner).ok_or_else(|| {
                crate::fail::Failure::new(format!("no member named `{owner}` in the config"))
                    .hint("`supervisor config check` lists the members")
            })?;
            Ok(Scope::Personal(owner.name.clone()))
        }
    }
}

/// Whose secrets `secret list` shows.
pub fn secret_list(caller: &Caller, config: &Config, all: bool) -> Result<Visible> {
    let me = member_for(caller, config, all)?;
    if !all {
        return Ok(Visible::Own(me.name.clone()));
    }
    if me.admin {
        return Ok(Visible::Everything);
    }
    Err(
        Denied::new("--all shows every member's personal secrets and needs an admin")
            .hint("leave out --all to see the team's secrets and your own")
            .into(),
    )
}

/// Whose run a scope question is about, if the caller may ask it (`None`:
/// nobody's). Anyone may ask about their own runs and about runs with
/// nobody behind them; another member's names their personal secrets.
pub fn scope_query(caller: &Caller, config: &Config, who: &ScopeFor) -> Result<Option<String>> {
    let me = member(caller, config)?;
    match who {
        ScopeFor::Caller => Ok(Some(me.name.clone())),
        ScopeFor::Nobody => Ok(None),
        ScopeFor::Member(other) if other != &me.name && !me.admin => Err(Denied::new(format!(
            "what a run of `{other}` receives names their personal secrets, which only admins may see"
        ))
        .hint("leave out --member for your own runs, or pass --nobody for runs with no member")
        .into()),
        ScopeFor::Member(other) => Ok(Some(other.clone())),
    }
}

/// The member a run starts as: the caller.
pub fn start_run<'a>(caller: &'a Caller, config: &Config) -> Result<&'a Member> {
    member(caller, config)
}

/// Whose runs `runs list|show|logs` show.
pub fn runs(caller: &Caller, config: &Config) -> Result<Visible> {
    let me = member(caller, config)?;
    Ok(if me.admin {
        Visible::Everything
    } else {
        Visible::Own(me.name.clone())
    })
}

/// The audit log: admins only.
pub fn audit(caller: &Caller, config: &Config) -> Result<()> {
    let me = member_for(caller, config, true)?;
    if me.admin {
        return Ok(());
    }
    Err(Denied::new(format!(
        "the audit log is for admins, and member `{}` is not one",
        me.name
    ))
    .hint("`supervisor runs list` shows your own runs")
    .into())
}

#[cfg(test)]
mod tests;
