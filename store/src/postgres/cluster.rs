//! What the nodes of one team agree on through the database: leases, run
//! slots of agents with `max_concurrent`, and cron firings.
//!
//! A node is alive while its row in `nodes` was renewed within the lease
//! (the database's clock decides, so the nodes' clocks need not agree).
//! Slots and firings of a node that is not alive are free again.

use postgres::Client;
use supervisor_config::Overlap;

use super::Ctx;
use super::tx::host_name;
use crate::Result;
use crate::cluster::{Firing, Queued};

/// SQL that is true when node `$1`'s lease holds (`$2`: the lease in seconds).
const ALIVE: &str = "EXISTS (SELECT 1 FROM nodes n WHERE n.id = {node} AND n.heartbeat_at >= now() - make_interval(secs => {lease}))";

fn alive(node: &str, lease: &str) -> String {
    ALIVE.replace("{node}", node).replace("{lease}", lease)
}

/// Renews this node's lease; `false` when its row was gone (live nodes
/// took it for dead and took over its runs).
pub(crate) fn heartbeat(client: &mut Client, ctx: &Ctx<'_>) -> Result<bool> {
    let pid = i64::from(std::process::id());
    let row = client.query_one(
        "INSERT INTO nodes (id, host, pid) VALUES ($1, $2, $3)
         ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()
         RETURNING (xmax = 0) AS inserted",
        &[&ctx.node, &host_name(), &pid],
    )?;
    let inserted: bool = row.get(0);
    Ok(!inserted)
}

/// This node leaves (a clean stop): its row goes.
pub(crate) fn leave(client: &mut Client, ctx: &Ctx<'_>) -> Result<()> {
    client.execute("DELETE FROM nodes WHERE id = $1", &[&ctx.node])?;
    Ok(())
}

/// Frees what dead nodes held: their slots and open firings, and the rows
/// of dead nodes that own nothing any more. Their runs are marked lost (and
/// audited) by the store; their claimed deliveries are adopted by
/// `Deliveries::pending`.
pub(crate) fn release_dead(client: &mut Client, ctx: &Ctx<'_>) -> Result<()> {
    let lease = ctx.lease.as_secs_f64();
    let mut tx = client.transaction()?;
    tx.execute(
        &format!("DELETE FROM slots s WHERE NOT {}", alive("s.node", "$1")),
        &[&lease],
    )?;
    tx.execute(
        &format!(
            "UPDATE firings f SET state = 'lost' WHERE state IN ('queued', 'active') AND NOT {}",
            alive("f.node", "$1")
        ),
        &[&lease],
    )?;
    tx.execute(
        "DELETE FROM nodes d WHERE d.heartbeat_at < now() - make_interval(secs => $1)
           AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.node = d.id AND r.status = 'running')
           AND NOT EXISTS (SELECT 1 FROM pending p WHERE p.node = d.id)",
        &[&lease],
    )?;
    tx.commit()?;
    Ok(())
}

/// Takes one of `limit` slots of `agent` across the cluster for `token`;
/// `false` when all are held (by live nodes).
pub(crate) fn acquire_slot(
    client: &mut Client,
    ctx: &Ctx<'_>,
    agent: &str,
    limit: u32,
    token: &str,
) -> Result<bool> {
    let lease = ctx.lease.as_secs_f64();
    let mut tx = client.transaction()?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('supervisor-agent-slots:' || $1))",
        &[&agent],
    )?;
    tx.execute(
        &format!(
            "DELETE FROM slots s WHERE s.agent = $1 AND NOT {}",
            alive("s.node", "$2")
        ),
        &[&agent, &lease],
    )?;
    let held: i64 = tx
        .query_one("SELECT count(*) FROM slots WHERE agent = $1", &[&agent])?
        .get(0);
    let free = held < i64::from(limit);
    if free {
        tx.execute(
            "INSERT INTO slots (token, agent, node) VALUES ($1, $2, $3)",
            &[&token, &agent, &ctx.node],
        )?;
    }
    tx.commit()?;
    Ok(free)
}

pub(crate) fn release_slot(client: &mut Client, token: &str) -> Result<()> {
    client.execute("DELETE FROM slots WHERE token = $1", &[&token])?;
    Ok(())
}

/// Whether an earlier firing of `schedule` than `at` is still open (queued
/// or running) on a live node.
fn earlier_open(
    tx: &mut postgres::Transaction<'_>,
    schedule: &str,
    at: &str,
    lease: f64,
) -> Result<bool> {
    Ok(tx
        .query_one(
            &format!(
                "SELECT EXISTS (SELECT 1 FROM firings f WHERE f.schedule = $1 AND f.at < $2
                   AND f.state IN ('queued', 'active') AND {})",
                alive("f.node", "$3")
            ),
            &[&schedule, &at, &lease],
        )?
        .get(0))
}

fn lock_schedule(tx: &mut postgres::Transaction<'_>, schedule: &str) -> Result<()> {
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('supervisor-schedule:' || $1))",
        &[&schedule],
    )?;
    Ok(())
}

/// Claims the firing of `schedule` due at `at` (RFC 3339): exactly one node
/// gets it; the overlap rule is applied against every node's open firings.
pub(crate) fn claim_firing(
    client: &mut Client,
    ctx: &Ctx<'_>,
    schedule: &str,
    at: &str,
    overlap: Overlap,
) -> Result<Firing> {
    let lease = ctx.lease.as_secs_f64();
    let mut tx = client.transaction()?;
    lock_schedule(&mut tx, schedule)?;
    let taken = tx
        .query_opt(
            "SELECT 1 FROM firings WHERE schedule = $1 AND at = $2",
            &[&schedule, &at],
        )?
        .is_some();
    if taken {
        return Ok(Firing::Taken);
    }
    let busy = overlap != Overlap::Allow && earlier_open(&mut tx, schedule, at, lease)?;
    let (state, firing) = match (overlap, busy) {
        (Overlap::Skip, true) => ("skipped", Firing::Skip),
        (Overlap::Queue, true) => ("queued", Firing::Queued),
        _ => ("active", Firing::Start),
    };
    tx.execute(
        "INSERT INTO firings (schedule, at, node, state) VALUES ($1, $2, $3, $4)",
        &[&schedule, &at, &ctx.node, &state],
    )?;
    // Keep a day of history per schedule; older closed firings go.
    let horizon =
        crate::time::format_time(crate::time::parse_time(at)? - chrono::Duration::days(1));
    tx.execute(
        "DELETE FROM firings WHERE ctid IN (SELECT ctid FROM firings WHERE schedule = $1 AND at < $2
           AND state NOT IN ('queued', 'active') LIMIT 100)",
        &[&schedule, &horizon],
    )?;
    tx.commit()?;
    Ok(firing)
}

/// Starts a queued firing once no earlier one is open.
pub(crate) fn start_queued(
    client: &mut Client,
    ctx: &Ctx<'_>,
    schedule: &str,
    at: &str,
) -> Result<Queued> {
    let lease = ctx.lease.as_secs_f64();
    let mut tx = client.transaction()?;
    lock_schedule(&mut tx, schedule)?;
    let state: Option<String> = tx
        .query_opt(
            "SELECT state FROM firings WHERE schedule = $1 AND at = $2 AND node = $3",
            &[&schedule, &at, &ctx.node],
        )?
        .map(|r| r.get(0));
    if state.as_deref() != Some("queued") {
        return Ok(Queued::Gone);
    }
    if earlier_open(&mut tx, schedule, at, lease)? {
        return Ok(Queued::Wait);
    }
    tx.execute(
        "UPDATE firings SET state = 'active' WHERE schedule = $1 AND at = $2",
        &[&schedule, &at],
    )?;
    tx.commit()?;
    Ok(Queued::Start)
}

pub(crate) fn end_firing(client: &mut Client, schedule: &str, at: &str) -> Result<()> {
    client.execute(
        "UPDATE firings SET state = 'done' WHERE schedule = $1 AND at = $2 AND state IN ('queued', 'active')",
        &[&schedule, &at],
    )?;
    Ok(())
}
