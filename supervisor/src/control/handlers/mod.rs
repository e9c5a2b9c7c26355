//! One handler per request: check with [`super::authz`], then act on the
//! store, and answer with documents that hold names, never values.

pub mod audit_list;
pub mod audit_verify;
pub mod run;
pub mod runs_list;
pub mod runs_logs;
pub mod runs_show;
pub mod scope;
pub mod secret_check;
pub mod secret_delete;
pub mod secret_list;
pub mod secret_write;
