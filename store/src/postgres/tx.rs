//! [`Tx`] for a PostgreSQL transaction: the rows in PostgreSQL's SQL.
//!
//! A run belongs to the node that recorded it; it is an orphan once that
//! node's lease (renewed by its heartbeat, measured on the database's
//! clock) has run out, or the node is gone from `nodes`.

use postgres::Transaction;
use postgres::types::ToSql;

use super::Ctx;
use crate::Result;
use crate::backend::{
    IsAlive, MetaRow, NewSecret, Orphan, RunRow, SealedRow, SecretId, SecretRow, Tx,
};
use crate::evidence::{Entry, GENESIS, Head, Stored};

const ENTRY_COLUMNS: &str = "seq, at, actor, action, detail, prev_hash, hash, subject";
const META_COLUMNS: &str = "scope, owner, name, description, version, created_at, created_by, updated_at, updated_by, leaked_run, leaked_at, leaked_runs";
const RUN_COLUMNS: &str = "id, agent, trigger, member, status, exit_code, signal, reason, started_at, ended_at, log_bytes, redactions, detail";

/// A transaction, with the node it runs for.
pub(crate) struct PgTx<'t> {
    pub(crate) tx: Transaction<'t>,
    pub(crate) node: String,
    /// The lease, in seconds.
    pub(crate) lease: f64,
}

impl<'t> PgTx<'t> {
    pub(crate) fn new(tx: Transaction<'t>, ctx: &Ctx<'_>) -> PgTx<'t> {
        PgTx {
            tx,
            node: ctx.node.to_owned(),
            lease: ctx.lease.as_secs_f64(),
        }
    }

    pub(crate) fn commit(self) -> Result<()> {
        Ok(self.tx.commit()?)
    }

    fn rows(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<postgres::Row>> {
        Ok(self.tx.query(sql, params)?)
    }

    fn opt(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Option<postgres::Row>> {
        Ok(self.tx.query_opt(sql, params)?)
    }

    fn exec(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        Ok(self.tx.execute(sql, params)?)
    }

    /// Renews this node's lease (and creates its row): a node that records
    /// runs holds a lease.
    pub(crate) fn renew(&mut self) -> Result<()> {
        let host = host_name();
        let pid = i64::from(std::process::id());
        let node = self.node.clone();
        self.exec(
            "INSERT INTO nodes (id, host, pid) VALUES ($1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()",
            &[&node, &host, &pid],
        )?;
        Ok(())
    }
}

/// This machine's name, for `nodes` (what an operator reads).
pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

fn stored(r: &postgres::Row) -> Stored {
    Stored {
        seq: r.get(0),
        at: r.get(1),
        actor: r.get(2),
        action: r.get(3),
        detail: r.get(4),
        prev_hash: r.get(5),
        hash: r.get(6),
        subject: r.get(7),
    }
}

fn meta(r: &postgres::Row) -> MetaRow {
    (
        r.get(0),
        r.get(1),
        r.get(2),
        r.get(3),
        r.get(4),
        r.get(5),
        r.get(6),
        r.get(7),
        r.get(8),
        r.get(9),
        r.get(10),
        r.get(11),
    )
}

fn run(r: &postgres::Row) -> RunRow {
    RunRow {
        id: r.get(0),
        agent: r.get(1),
        trigger: r.get(2),
        member: r.get(3),
        status: r.get(4),
        exit_code: r.get(5),
        signal: r.get(6),
        reason: r.get(7),
        started_at: r.get(8),
        ended_at: r.get(9),
        log_bytes: r.get(10),
        redactions: r.get(11),
        detail: r.get(12),
    }
}

impl Tx for PgTx<'_> {
    fn meta(&mut self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .opt("SELECT value FROM meta WHERE key = $1", &[&key])?
            .map(|r| r.get(0)))
    }

    fn set_meta(&mut self, key: &str, value: &[u8]) -> Result<()> {
        self.exec(
            "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = $2",
            &[&key, &value],
        )?;
        Ok(())
    }

    fn read_seal(&mut self) -> Result<Option<(Head, String)>> {
        Ok(self
            .opt(
                "SELECT anchor, seq, hash, secrets, mac FROM audit_seal WHERE id = 1",
                &[],
            )?
            .map(|r| {
                (
                    Head {
                        anchor: r.get(0),
                        seq: r.get(1),
                        hash: r.get(2),
                        secrets: r.get(3),
                    },
                    r.get(4),
                )
            }))
    }

    fn write_seal(&mut self, head: &Head, mac: &str) -> Result<()> {
        self.exec(
            "INSERT INTO audit_seal (id, anchor, seq, hash, secrets, mac) VALUES (1, $1, $2, $3, $4, $5)
             ON CONFLICT (id) DO UPDATE SET anchor = $1, seq = $2, hash = $3, secrets = $4, mac = $5",
            &[&head.anchor, &head.seq, &head.hash, &head.secrets, &mac],
        )?;
        Ok(())
    }

    fn tail(&mut self) -> Result<(i64, String)> {
        Ok(self
            .opt("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", &[])?
            .map_or((0, GENESIS.to_owned()), |r| (r.get(0), r.get(1))))
    }

    fn insert_entry(&mut self, e: &Entry<'_>, hash: &str) -> Result<()> {
        self.exec(
            "INSERT INTO audit (seq, at, actor, action, detail, prev_hash, hash, subject) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[&e.seq, &e.at, &e.actor, &e.action, &e.detail, &e.prev_hash, &hash, &e.subject],
        )?;
        Ok(())
    }

    fn latest_about(&mut self, subject: &str) -> Result<Option<Stored>> {
        Ok(self
            .opt(
                &format!(
                    "SELECT {ENTRY_COLUMNS} FROM audit WHERE subject = $1 ORDER BY seq DESC LIMIT 1"
                ),
                &[&subject],
            )?
            .map(|r| stored(&r)))
    }

    fn subjects(&mut self) -> Result<Vec<String>> {
        Ok(self
            .rows(
                "SELECT DISTINCT subject FROM audit WHERE subject IS NOT NULL",
                &[],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    fn entries_after(&mut self, seq: i64, limit: i64) -> Result<Vec<Stored>> {
        Ok(self
            .rows(
                &format!("SELECT {ENTRY_COLUMNS} FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2"),
                &[&seq, &limit],
            )?
            .iter()
            .map(stored)
            .collect())
    }

    fn newest_entries(&mut self, limit: Option<usize>) -> Result<Vec<Stored>> {
        let limit = limit.map(|l| l as i64);
        Ok(self
            .rows(
                &format!(
                    "SELECT * FROM (SELECT {ENTRY_COLUMNS} FROM audit ORDER BY seq DESC LIMIT $1) newest ORDER BY seq"
                ),
                &[&limit],
            )?
            .iter()
            .map(stored)
            .collect())
    }

    fn secret(&mut self, id: SecretId<'_>) -> Result<Option<MetaRow>> {
        Ok(self
            .opt(
                &format!(
                    "SELECT {META_COLUMNS} FROM secrets WHERE scope = $1 AND owner = $2 AND name = $3"
                ),
                &[&id.scope, &id.owner, &id.name],
            )?
            .map(|r| meta(&r)))
    }

    fn secret_rows(&mut self) -> Result<Vec<SecretRow>> {
        Ok(self
            .rows(
                "SELECT scope, owner, name, version, nonce FROM secrets",
                &[],
            )?
            .iter()
            .map(|r| SecretRow {
                scope: r.get(0),
                owner: r.get(1),
                name: r.get(2),
                version: r.get(3),
                nonce: r.get(4),
            })
            .collect())
    }

    fn sealed_value(&mut self, id: SecretId<'_>) -> Result<Option<SealedRow>> {
        Ok(self
            .opt(
                "SELECT version, nonce, ciphertext FROM secrets WHERE scope = $1 AND owner = $2 AND name = $3",
                &[&id.scope, &id.owner, &id.name],
            )?
            .map(|r| (r.get(0), r.get(1), r.get(2))))
    }

    fn sealed_values(&mut self, ids: &[SecretId<'_>]) -> Result<Vec<Option<SealedRow>>> {
        let scopes: Vec<&str> = ids.iter().map(|i| i.scope).collect();
        let owners: Vec<&str> = ids.iter().map(|i| i.owner).collect();
        let names: Vec<&str> = ids.iter().map(|i| i.name).collect();
        let rows = self.rows(
            "SELECT s.scope, s.owner, s.name, s.version, s.nonce, s.ciphertext
             FROM unnest($1::text[], $2::text[], $3::text[]) AS w(scope, owner, name)
             JOIN secrets s ON s.scope = w.scope AND s.owner = w.owner AND s.name = w.name",
            &[&scopes, &owners, &names],
        )?;
        let mut found: std::collections::HashMap<(String, String, String), SealedRow> = rows
            .iter()
            .map(|r| {
                (
                    (r.get(0), r.get(1), r.get(2)),
                    (r.get(3), r.get(4), r.get(5)),
                )
            })
            .collect();
        Ok(ids
            .iter()
            .map(|i| found.remove(&(i.scope.to_owned(), i.owner.to_owned(), i.name.to_owned())))
            .collect())
    }

    fn insert_secret(&mut self, id: SecretId<'_>, row: &NewSecret<'_>) -> Result<()> {
        self.exec(
            "INSERT INTO secrets (scope, owner, name, description, version, nonce, ciphertext, created_at, created_by, updated_at, updated_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $8, $9)",
            &[&id.scope, &id.owner, &id.name, &row.description, &row.version, &row.nonce, &row.ciphertext, &row.at, &row.actor],
        )?;
        Ok(())
    }

    fn update_secret(&mut self, id: SecretId<'_>, row: &NewSecret<'_>) -> Result<()> {
        self.exec(
            "UPDATE secrets SET version = $4, nonce = $5, ciphertext = $6, description = COALESCE($7, description), updated_at = $8, updated_by = $9,
             leaked_run = NULL, leaked_at = NULL, leaked_runs = 0
             WHERE scope = $1 AND owner = $2 AND name = $3",
            &[&id.scope, &id.owner, &id.name, &row.version, &row.nonce, &row.ciphertext, &row.description, &row.at, &row.actor],
        )?;
        Ok(())
    }

    fn mark_leak(&mut self, id: SecretId<'_>, version: i64, run: &str, at: &str) -> Result<usize> {
        Ok(self.exec(
            "UPDATE secrets SET leaked_run = $5, leaked_at = $6, leaked_runs = leaked_runs + 1
             WHERE scope = $1 AND owner = $2 AND name = $3 AND version = $4",
            &[&id.scope, &id.owner, &id.name, &version, &run, &at],
        )? as usize)
    }

    fn delete_secret(&mut self, id: SecretId<'_>) -> Result<()> {
        self.exec(
            "DELETE FROM secrets WHERE scope = $1 AND owner = $2 AND name = $3",
            &[&id.scope, &id.owner, &id.name],
        )?;
        Ok(())
    }

    fn list_secrets(&mut self) -> Result<Vec<MetaRow>> {
        Ok(self
            .rows(
                &format!(
                    "SELECT {META_COLUMNS} FROM secrets ORDER BY scope DESC, owner COLLATE \"C\", name COLLATE \"C\""
                ),
                &[],
            )?
            .iter()
            .map(meta)
            .collect())
    }

    fn insert_run(&mut self, r: &RunRow, delivery: Option<&str>) -> Result<()> {
        self.renew()?;
        let node = self.node.clone();
        self.exec(
            &format!("INSERT INTO runs ({RUN_COLUMNS}, node, delivery) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"),
            &[
                &r.id, &r.agent, &r.trigger, &r.member, &r.status, &r.exit_code, &r.signal, &r.reason,
                &r.started_at, &r.ended_at, &r.log_bytes, &r.redactions, &r.detail, &node, &delivery,
            ],
        )?;
        Ok(())
    }

    fn run_detail(&mut self, id: &str) -> Result<Option<String>> {
        Ok(self
            .opt("SELECT detail FROM runs WHERE id = $1", &[&id])?
            .map(|r| r.get(0)))
    }

    fn end_run(&mut self, r: &RunRow) -> Result<usize> {
        Ok(self.exec(
            "UPDATE runs SET status = $2, exit_code = $3, signal = $4, reason = $5, ended_at = $6, log_bytes = $7, redactions = $8, detail = $9 WHERE id = $1",
            &[&r.id, &r.status, &r.exit_code, &r.signal, &r.reason, &r.ended_at, &r.log_bytes, &r.redactions, &r.detail],
        )? as usize)
    }

    fn set_run_detail(&mut self, id: &str, detail: &str) -> Result<()> {
        self.exec("UPDATE runs SET detail = $2 WHERE id = $1", &[&id, &detail])?;
        Ok(())
    }

    fn list_runs(
        &mut self,
        agent: Option<&str>,
        member: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<RunRow>> {
        let limit = limit.map(|l| l as i64);
        Ok(self
            .rows(
                &format!(
                    "SELECT {RUN_COLUMNS} FROM runs WHERE ($1::TEXT IS NULL OR agent = $1) AND ($3::TEXT IS NULL OR member = $3)
                     ORDER BY started_at DESC, id DESC LIMIT $2"
                ),
                &[&agent, &limit, &member],
            )?
            .iter()
            .map(run)
            .collect())
    }

    fn runs_by_prefix(&mut self, prefix: &str) -> Result<Vec<RunRow>> {
        let pattern = format!("{}%", prefix.replace(['%', '_', '\\'], ""));
        Ok(self
            .rows(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id LIKE $1 LIMIT 2"),
                &[&pattern],
            )?
            .iter()
            .map(run)
            .collect())
    }

    fn orphaned_runs(&mut self, _is_alive: IsAlive<'_>) -> Result<Vec<Orphan>> {
        // Processes on other hosts cannot be asked: leases decide.
        let lease = self.lease;
        Ok(self
            .rows(
                "SELECT r.id, r.member, r.agent FROM runs r
                 WHERE r.status = 'running' AND NOT EXISTS (
                     SELECT 1 FROM nodes n
                     WHERE n.id = r.node AND n.heartbeat_at >= now() - make_interval(secs => $1))
                 ORDER BY r.id",
                &[&lease],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    fn mark_lost(&mut self, id: &str, at: &str) -> Result<()> {
        self.exec(
            "UPDATE runs SET status = 'lost', ended_at = $2 WHERE id = $1",
            &[&id, &at],
        )?;
        Ok(())
    }

    fn run_for_delivery(&mut self, delivery: &str) -> Result<Option<String>> {
        Ok(self
            .opt(
                "SELECT id FROM runs WHERE delivery = $1 LIMIT 1",
                &[&delivery],
            )?
            .map(|r| r.get(0)))
    }

    fn run_exists(&mut self, id: &str) -> Result<bool> {
        Ok(self
            .opt("SELECT 1 FROM runs WHERE id = $1", &[&id])?
            .is_some())
    }
}
