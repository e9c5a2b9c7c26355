//! `supervisor init`: state directory, master key, store.

use anyhow::Result;
use supervisor_store::{MasterKey, Store, StoreError};

use crate::context::Context;
use crate::fail::Failure;

pub fn run(ctx: &Context) -> Result<()> {
    if let Some(parent) = ctx.key_file.parent() {
        supervisor_store::ensure_private_dir(parent)?;
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
            // A new key cannot open a store sealed with the lost one; writing
            // it would only take the place where the backup must go.
            if let Ok(store) = Store::open_at(&ctx.location()?, None) {
                return Err(Failure::new(format!(
                    "the store at {} exists, but its master key at {} is missing",
                    store.describe(),
                    ctx.key_file.display()
                ))
                .hint(format!(
                    "restore the key from your backup to {} (a new key cannot open the values already stored)",
                    ctx.key_file.display()
                ))
                .into());
            }
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
    // The state directory holds the key (by default), run logs and homes
    // whichever database holds the store.
    supervisor_store::ensure_private_dir(&ctx.state_dir)?;
    let store = Store::init_at(&ctx.location()?, &key)?;
    println!("store ready at {}", store.describe());
    Ok(())
}
