//! `secret_delete`: removes a secret; its ciphertext is overwritten.

use anyhow::Result;
use supervisor_config::SecretName;
use supervisor_protocol::{Change, Reply, Target};

use crate::control::{Caller, authz, document, store};
use crate::run::Engine;

pub fn handle(engine: &Engine, caller: &Caller, target: &Target) -> Result<Reply> {
    let scope = authz::secret_scope(caller, &engine.config, target)?;
    let actor = authz::member(caller, &engine.config)?.name.clone();
    let name = SecretName::new(&target.name)?;
    let meta = store(engine).delete_secret(&scope, &name, &actor)?;
    Ok(Reply::SecretChanged {
        change: Change::Deleted,
        secret: document(&meta)?,
    })
}
