//! The supervisor's configuration: the TOML schema, loading and validation.
//!
//! Invariant: a [`Config`] value only exists when the whole file was valid.
//! Every problem is reported with the file, line and column it comes from and
//! a hint on how to fix it, so nothing starts on a half-understood config.
//! This crate never reads a secret value: credentials are [`SecretRef`]s that
//! the binary resolves when it needs them.

#![forbid(unsafe_code)]

mod agents;
mod document;
mod error;
mod integrations;
mod load;
mod names;
mod raw;
mod sandbox;
mod schedules;
mod server;
mod spelling;
mod store;
mod units;

pub use agents::{
    Agent, DEFAULT_AGENT_PATH, DEFAULT_KILL_GRACE, DEFAULT_LOG_LIMIT, DEFAULT_TIMEOUT, OnLeak,
};
pub use error::{ConfigError, Problem};
pub use integrations::{
    DEFAULT_LINEAR_API_URL, DEFAULT_SLACK_API_BASE, LinearConfig, LinearOn, LinearRule,
    SlackConfig, SlackRoute, UnknownUsers, Webhook,
};
pub use load::{Config, Fault, IdSource, Member, ScheduleCheck, SecretRef, Team, TriggerKind};
pub use names::{NameError, SecretName, is_reserved_env_name, validate_member_name};
pub use sandbox::{AgentPolicy, CgroupSetting, Limits, Sandbox};
pub use schedules::{DEFAULT_TIMEZONE, Overlap, Schedule};
pub use server::{
    DEFAULT_BODY_LIMIT, DEFAULT_LISTEN, DEFAULT_LOG, DEFAULT_MAX_CONCURRENT_RUNS,
    DEFAULT_QUEUE_LIMIT, DEFAULT_SHUTDOWN_GRACE, MAX_SOCKET_PATH, Server,
};
pub use spelling::near_miss;
pub use store::{DEFAULT_LEASE, StoreConfig};
pub use units::{parse_duration, parse_size};

#[cfg(test)]
mod tests;
