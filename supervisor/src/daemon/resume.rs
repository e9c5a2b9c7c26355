//! Deliveries that a daemon answered and claimed, but died before their
//! runs were recorded: at start, before anything new is accepted, each is
//! checked again against its source's secret and taken up, unless its run
//! is in the store already (the daemon died between recording the run and
//! noting so). An answered delivery is thus run once, not zero times.
//!
//! On a shared store the same holds across nodes (a live node adopts the
//! work of a dead one), and a node also takes up its own claims that it
//! never queued ([`stale`]): a claim whose commit reached the database
//! although the node saw an error, and answered 503.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use supervisor_store::{Deliveries, Pending};
use supervisor_triggers::VerifyError;

use super::Daemon;

/// How old a claim of this node must be, and not queued here, to be taken
/// for one that was never queued (a claim is queued within milliseconds).
const STALE_SECS: i64 = 60;

/// Takes up every pending delivery (at start; on a shared store, those of
/// nodes whose lease ran out).
pub async fn pending(d: &Arc<Daemon>) {
    take_up(d, |x| x.pending()).await;
}

/// Takes up this node's claims that were never queued.
pub async fn stale(d: &Arc<Daemon>) {
    let now = chrono::Utc::now().timestamp();
    take_up(d, move |x| x.stale(now, STALE_SECS)).await;
}

async fn take_up(
    d: &Arc<Daemon>,
    read: impl FnOnce(&mut Deliveries) -> supervisor_store::Result<Vec<Pending>> + Send + 'static,
) {
    let deliveries = d.deliveries.clone();
    let engine = d.runner.engine();
    let runner = d.runner.clone();
    let found = tokio::task::spawn_blocking(move || {
        let pending = deliveries.with(read)?;
        let mut store = engine.store.lock().unwrap_or_else(|p| p.into_inner());
        pending
            .into_iter()
            .filter(|p| !runner.in_flight(&format!("{}:{}", p.source, p.key)))
            .map(|p| {
                let delivery = format!("{}:{}", p.source, p.key);
                let ran = store.run_for_delivery(&delivery)?;
                Ok((p, delivery, ran))
            })
            .collect::<supervisor_store::Result<Vec<_>>>()
    })
    .await;
    let found = match found {
        Ok(Ok(found)) => found,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "could not read the deliveries left pending");
            return;
        }
        Err(e) => {
            tracing::error!(error = %e, "could not read the deliveries left pending");
            return;
        }
    };
    for (p, delivery, ran) in found {
        if let Some(run) = ran {
            tracing::info!(%delivery, %run, "a pending delivery had its run recorded already");
            d.runner.finish_delivery(Some(&delivery));
            continue;
        }
        let claim = Claim {
            meta: serde_json::from_str(&p.meta).unwrap_or_default(),
            key: p.key,
            body: p.body,
        };
        let taken = match p.source.as_str() {
            "webhook" => super::hooks::resume(d, &claim),
            "linear" => super::linear::resume(d, &claim),
            "slack" => super::slack::resume(d, &claim),
            other => Err(format!("`{other}` is not a source")),
        };
        match taken {
            Ok(()) => {
                tracing::warn!(%delivery, "taking up a delivery whose run a previous daemon never recorded")
            }
            Err(why) => {
                tracing::warn!(%delivery, %why, "a pending delivery is dropped");
                d.runner.finish_delivery(Some(&delivery));
            }
        }
    }
}

/// A source's check of a timestamped signature: `(secret, timestamp,
/// signature, body, now)`.
pub(super) type Verify =
    fn(&[u8], Option<&str>, Option<&str>, &[u8], i64) -> Result<(), VerifyError>;

/// A delivery taken up again: its key, what its source kept to check it
/// again (`meta`: signature, timestamp, the hook's name) and its body.
pub(super) struct Claim {
    pub key: String,
    pub meta: serde_json::Value,
    pub body: Vec<u8>,
}

/// Checks a claimed delivery's timestamped signature again, as it was
/// signed: its age aside, since the signing time stands in for now.
pub(super) fn verify_again(
    verify: Verify,
    secret: &SecretString,
    claim: &Claim,
) -> Result<(), String> {
    let timestamp = claim.meta["timestamp"].as_str();
    let signed_at = timestamp.and_then(|t| t.parse().ok()).unwrap_or(0);
    let signature = claim.meta["signature"].as_str();
    let secret = secret.expose_secret().as_bytes();
    verify(secret, timestamp, signature, &claim.body, signed_at)
        .map_err(|e| format!("it no longer verifies: {e}"))
}
