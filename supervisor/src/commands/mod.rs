//! One module per command.

pub mod audit;
pub mod config;
pub mod init;
pub mod run;
pub mod runs;
pub mod schedules;
pub mod secret;
