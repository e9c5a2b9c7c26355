//! `secret_write`: stores a value, new or replacing one (version + 1). The
//! value arrives in a zeroizing type and goes straight to the store.

use anyhow::Result;
use supervisor_config::SecretName;
use supervisor_protocol::{Change, Reply, SecretValue, Target};

use crate::control::{Caller, authz, document, store};
use crate::run::Engine;

pub fn handle(
    engine: &Engine,
    caller: &Caller,
    target: &Target,
    update: bool,
    description: Option<String>,
    value: SecretValue,
) -> Result<Reply> {
    let scope = authz::secret_scope(caller, &engine.config, target)?;
    let actor = authz::member(caller, &engine.config)?.name.clone();
    let name = SecretName::new(&target.name)?;
    let value = value.into_inner();
    let description = description.as_deref();
    let mut store = store(engine);
    let (meta, change) = if update {
        let meta = store.update_secret(&scope, &name, description, &value, &actor)?;
        (meta, Change::Updated)
    } else {
        let meta = store.create_secret(&scope, &name, description, &value, &actor)?;
        (meta, Change::Created)
    };
    Ok(Reply::SecretChanged {
        change,
        secret: document(&meta)?,
    })
}
