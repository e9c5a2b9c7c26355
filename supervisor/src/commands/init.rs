//! `supervisor init`: state directory, master key, store.

use anyhow::Result;
use supervisor_store::{MasterKey, Store, StoreError};

use crate::context::Context;

pub fn run(ctx: &Context) -> Result<()> {
    if let Some(parent) = ctx.key_file.parent() {
        supervisor_store::create_private_dir(parent)?;
    }
    let key = match ctx.key() {
        Ok(key) => {
            println!(
                "using the existing master key at {}",
                key.source().display()
            );
            key
        }
        Err(e) if matches!(e.downcast_ref(), Some(StoreError::KeyMissing { .. })) => {
            let key = MasterKey::generate(&ctx.key_file)?;
            println!(
                "created a master key at {} (mode 0600)",
                ctx.key_file.display()
            );
            println!("  back it up somewhere safe: without it no stored value can be opened");
            key
        }
        Err(e) => return Err(e),
    };
    let store = Store::init(&ctx.state_dir, &key)?;
    println!("store ready at {}", store.path().display());
    Ok(())
}
