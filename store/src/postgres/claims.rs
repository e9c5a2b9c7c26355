//! Delivery claims in the shared database: whichever node a delivery (or
//! its retry) reaches, one claim wins. Claims commit with
//! `synchronous_commit = on`: on disk before the request is answered.
//!
//! A claim's work (the verified body) belongs to the node that answered
//! it; a node whose lease ran out has its work adopted by a live node.

use postgres::Client;

use super::Ctx;
use crate::Result;
use crate::dedupe::Pending;

/// Claims `keys` of `source` (see `Deliveries::claim`).
pub(crate) fn claim(
    client: &mut Client,
    ctx: &Ctx<'_>,
    source: &str,
    keys: &[&str],
    now_unix: i64,
    ttl_secs: i64,
    work: Option<(&str, &[u8])>,
) -> Result<bool> {
    let mut tx = client.transaction()?;
    tx.batch_execute("SET LOCAL synchronous_commit TO on")?;
    tx.execute(
        "DELETE FROM deliveries WHERE source = $1 AND seen_at < $2",
        &[&source, &(now_unix - ttl_secs)],
    )?;
    // One order for every node: two claims of the same keys cannot deadlock.
    let mut sorted: Vec<&str> = keys.to_vec();
    sorted.sort_unstable();
    for key in &sorted {
        let inserted = tx.execute(
            "INSERT INTO deliveries (source, key, seen_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            &[&source, key, &now_unix],
        )?;
        if inserted == 0 {
            // Dropping the transaction rolls back the keys claimed so far.
            return Ok(false);
        }
    }
    if let (Some((meta, body)), Some(first)) = (work, keys.first()) {
        tx.execute(
            "INSERT INTO pending (source, key, meta, body, at, node) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (source, key) DO UPDATE SET meta = $3, body = $4, at = $5, node = $6",
            &[&source, first, &meta, &body, &now_unix, &ctx.node],
        )?;
    }
    tx.commit()?;
    Ok(true)
}

pub(crate) fn finish(client: &mut Client, source: &str, key: &str) -> Result<()> {
    client.execute(
        "DELETE FROM pending WHERE source = $1 AND key = $2",
        &[&source, &key],
    )?;
    Ok(())
}

pub(crate) fn release(client: &mut Client, source: &str, keys: &[&str]) -> Result<()> {
    let mut tx = client.transaction()?;
    for key in keys {
        tx.execute(
            "DELETE FROM deliveries WHERE source = $1 AND key = $2",
            &[&source, key],
        )?;
        tx.execute(
            "DELETE FROM pending WHERE source = $1 AND key = $2",
            &[&source, key],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// Adopts the work of nodes that are not alive (a node that died between
/// answering a delivery and recording its run), oldest first: it is this
/// node's to take up now.
pub(crate) fn adopt(client: &mut Client, ctx: &Ctx<'_>) -> Result<Vec<Pending>> {
    let lease = ctx.lease.as_secs_f64();
    let rows = client.query(
        "UPDATE pending p SET node = $1
         WHERE p.node <> $1 AND NOT EXISTS (
             SELECT 1 FROM nodes n WHERE n.id = p.node AND n.heartbeat_at >= now() - make_interval(secs => $2))
         RETURNING source, key, meta, body, seq",
        &[&ctx.node, &lease],
    )?;
    let mut found: Vec<(i64, Pending)> = rows
        .iter()
        .map(|r| {
            (
                r.get(4),
                Pending {
                    source: r.get(0),
                    key: r.get(1),
                    meta: r.get(2),
                    body: r.get(3),
                },
            )
        })
        .collect();
    found.sort_by_key(|(seq, _)| *seq);
    Ok(found.into_iter().map(|(_, p)| p).collect())
}

/// This node's claims made before `before` (Unix seconds) that still hold
/// their work, oldest first.
pub(crate) fn stale(client: &mut Client, ctx: &Ctx<'_>, before: i64) -> Result<Vec<Pending>> {
    Ok(client
        .query(
            "SELECT source, key, meta, body FROM pending WHERE node = $1 AND at < $2 ORDER BY seq",
            &[&ctx.node, &before],
        )?
        .iter()
        .map(|r| Pending {
            source: r.get(0),
            key: r.get(1),
            meta: r.get(2),
            body: r.get(3),
        })
        .collect())
}
