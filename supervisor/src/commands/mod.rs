//! One module per command: builds the request, prints the reply. Commands
//! that reach the store do so through a [`crate::backend::Backend`] only.

pub mod audit;
pub mod config;
pub mod init;
mod print;
pub mod run;
pub mod runs;
pub mod schedules;
pub mod secret;
mod views;
