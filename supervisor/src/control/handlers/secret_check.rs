//! `secret_check`: may the caller write this secret, and is it there (for
//! `update`) or not (for `create`)? Asked before a value is typed.

use anyhow::Result;
use supervisor_config::SecretName;
use supervisor_protocol::{Reply, Target};

use crate::control::{Caller, authz, store};
use crate::run::Engine;

pub fn handle(engine: &Engine, caller: &Caller, target: &Target, exists: bool) -> Result<Reply> {
    let scope = authz::secret_scope(caller, &engine.config, target)?;
    let name = SecretName::new(&target.name)?;
    store(engine).expect_secret(&scope, &name, exists)?;
    Ok(Reply::Checked)
}
