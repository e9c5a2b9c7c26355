//! [`Tx`] for a SQLite transaction: the rows in SQLite's SQL.

use rusqlite::{OptionalExtension, Row, Transaction, params};

use crate::Result;
use crate::backend::{
    IsAlive, MetaRow, NewSecret, Orphan, RunRow, SealedRow, SecretId, SecretRow, Tx,
};
use crate::evidence::{Entry, GENESIS, Head, Stored};

const ENTRY_COLUMNS: &str = "seq, at, actor, action, detail, prev_hash, hash, subject";
const META_COLUMNS: &str = "scope, owner, name, description, version, created_at, created_by, updated_at, updated_by, leaked_run, leaked_at, leaked_runs";
const RUN_COLUMNS: &str = "id, agent, trigger, member, status, exit_code, signal, reason, started_at, ended_at, log_bytes, redactions, detail";

fn stored(r: &Row<'_>) -> rusqlite::Result<Stored> {
    Ok(Stored {
        seq: r.get(0)?,
        at: r.get(1)?,
        actor: r.get(2)?,
        action: r.get(3)?,
        detail: r.get(4)?,
        prev_hash: r.get(5)?,
        hash: r.get(6)?,
        subject: r.get(7)?,
    })
}

fn meta(r: &Row<'_>) -> rusqlite::Result<MetaRow> {
    MetaRow::try_from(r)
}

fn run(r: &Row<'_>) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        id: r.get(0)?,
        agent: r.get(1)?,
        trigger: r.get(2)?,
        member: r.get(3)?,
        status: r.get(4)?,
        exit_code: r.get(5)?,
        signal: r.get(6)?,
        reason: r.get(7)?,
        started_at: r.get(8)?,
        ended_at: r.get(9)?,
        log_bytes: r.get(10)?,
        redactions: r.get(11)?,
        detail: r.get(12)?,
    })
}

/// Statements through the connection's cache: each is parsed once per
/// connection, not once per call (a run looks up every secret it opens).
trait Cached {
    fn cached_row<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T>;
    fn cached_exec(&self, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize>;
}

impl Cached for Transaction<'_> {
    fn cached_row<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        self.prepare_cached(sql)?.query_row(params, f)
    }

    fn cached_exec(&self, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }
}

impl Tx for Transaction<'_> {
    fn meta(&mut self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .cached_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    fn set_meta(&mut self, key: &str, value: &[u8]) -> Result<()> {
        self.cached_exec(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = ?2",
            params![key, value],
        )?;
        Ok(())
    }

    fn read_seal(&mut self) -> Result<Option<(Head, String)>> {
        Ok(self
            .cached_row(
                "SELECT anchor, seq, hash, secrets, mac FROM audit_seal WHERE id = 1",
                [],
                |r| {
                    Ok((
                        Head {
                            anchor: r.get(0)?,
                            seq: r.get(1)?,
                            hash: r.get(2)?,
                            secrets: r.get(3)?,
                        },
                        r.get(4)?,
                    ))
                },
            )
            .optional()?)
    }

    fn write_seal(&mut self, head: &Head, mac: &str) -> Result<()> {
        self.cached_exec(
            "INSERT INTO audit_seal (id, anchor, seq, hash, secrets, mac) VALUES (1, ?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (id) DO UPDATE SET anchor = ?1, seq = ?2, hash = ?3, secrets = ?4, mac = ?5",
            params![head.anchor, head.seq, head.hash, head.secrets, mac],
        )?;
        Ok(())
    }

    fn tail(&mut self) -> Result<(i64, String)> {
        Ok(self
            .cached_row(
                "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?
            .unwrap_or((0, GENESIS.to_owned())))
    }

    fn insert_entry(&mut self, e: &Entry<'_>, hash: &str) -> Result<()> {
        self.cached_exec(
            "INSERT INTO audit (seq, at, actor, action, detail, prev_hash, hash, subject) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![e.seq, e.at, e.actor, e.action, e.detail, e.prev_hash, hash, e.subject],
        )?;
        Ok(())
    }

    fn latest_about(&mut self, subject: &str) -> Result<Option<Stored>> {
        Ok(self
            .cached_row(
                &format!(
                    "SELECT {ENTRY_COLUMNS} FROM audit WHERE subject = ?1 ORDER BY seq DESC LIMIT 1"
                ),
                [subject],
                stored,
            )
            .optional()?)
    }

    fn subjects(&mut self) -> Result<Vec<String>> {
        let mut stmt = self.prepare_cached(
            "SELECT subject FROM audit WHERE subject IS NOT NULL GROUP BY subject",
        )?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn entries_after(&mut self, seq: i64, limit: i64) -> Result<Vec<Stored>> {
        let mut stmt = self.prepare_cached(&format!(
            "SELECT {ENTRY_COLUMNS} FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![seq, limit], stored)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn newest_entries(&mut self, limit: Option<usize>) -> Result<Vec<Stored>> {
        let limit = limit.map_or(-1, |l| l as i64);
        let mut stmt = self.prepare_cached(&format!(
            "SELECT * FROM (SELECT {ENTRY_COLUMNS} FROM audit ORDER BY seq DESC LIMIT ?1) ORDER BY seq"
        ))?;
        let rows = stmt.query_map([limit], stored)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn secret(&mut self, id: SecretId<'_>) -> Result<Option<MetaRow>> {
        Ok(self
            .cached_row(
                &format!(
                    "SELECT {META_COLUMNS} FROM secrets WHERE scope = ?1 AND owner = ?2 AND name = ?3"
                ),
                params![id.scope, id.owner, id.name],
                meta,
            )
            .optional()?)
    }

    fn secret_rows(&mut self) -> Result<Vec<SecretRow>> {
        let mut stmt =
            self.prepare_cached("SELECT scope, owner, name, version, nonce FROM secrets")?;
        let rows = stmt.query_map([], |r| {
            Ok(SecretRow {
                scope: r.get(0)?,
                owner: r.get(1)?,
                name: r.get(2)?,
                version: r.get(3)?,
                nonce: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn sealed_value(&mut self, id: SecretId<'_>) -> Result<Option<SealedRow>> {
        Ok(self
            .cached_row(
                "SELECT version, nonce, ciphertext FROM secrets WHERE scope = ?1 AND owner = ?2 AND name = ?3",
                params![id.scope, id.owner, id.name],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?)
    }

    fn insert_secret(&mut self, id: SecretId<'_>, row: &NewSecret<'_>) -> Result<()> {
        self.cached_exec(
            "INSERT INTO secrets (scope, owner, name, description, version, nonce, ciphertext, created_at, created_by, updated_at, updated_by)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?8, ?9)",
            params![id.scope, id.owner, id.name, row.description, row.version, row.nonce, row.ciphertext, row.at, row.actor],
        )?;
        Ok(())
    }

    fn update_secret(&mut self, id: SecretId<'_>, row: &NewSecret<'_>) -> Result<()> {
        self.cached_exec(
            "UPDATE secrets SET version = ?4, nonce = ?5, ciphertext = ?6, description = COALESCE(?7, description), updated_at = ?8, updated_by = ?9,
             leaked_run = NULL, leaked_at = NULL, leaked_runs = 0
             WHERE scope = ?1 AND owner = ?2 AND name = ?3",
            params![id.scope, id.owner, id.name, row.version, row.nonce, row.ciphertext, row.description, row.at, row.actor],
        )?;
        Ok(())
    }

    fn mark_leak(&mut self, id: SecretId<'_>, version: i64, run: &str, at: &str) -> Result<usize> {
        Ok(self.cached_exec(
            "UPDATE secrets SET leaked_run = ?5, leaked_at = ?6, leaked_runs = leaked_runs + 1
             WHERE scope = ?1 AND owner = ?2 AND name = ?3 AND version = ?4",
            params![id.scope, id.owner, id.name, version, run, at],
        )?)
    }

    fn delete_secret(&mut self, id: SecretId<'_>) -> Result<()> {
        self.cached_exec(
            "DELETE FROM secrets WHERE scope = ?1 AND owner = ?2 AND name = ?3",
            params![id.scope, id.owner, id.name],
        )?;
        Ok(())
    }

    fn list_secrets(&mut self) -> Result<Vec<MetaRow>> {
        let mut stmt = self.prepare_cached(&format!(
            "SELECT {META_COLUMNS} FROM secrets ORDER BY scope DESC, owner, name"
        ))?;
        let rows = stmt.query_map([], meta)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn insert_run(&mut self, r: &RunRow, _delivery: Option<&str>) -> Result<()> {
        // The delivery is found in `detail` (`run_for_delivery`).
        self.cached_exec(
            &format!("INSERT INTO runs ({RUN_COLUMNS}, pid) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"),
            params![
                r.id, r.agent, r.trigger, r.member, r.status, r.exit_code, r.signal, r.reason,
                r.started_at, r.ended_at, r.log_bytes, r.redactions, r.detail, std::process::id(),
            ],
        )?;
        Ok(())
    }

    fn run_detail(&mut self, id: &str) -> Result<Option<String>> {
        Ok(self
            .cached_row("SELECT detail FROM runs WHERE id = ?1", [id], |r| r.get(0))
            .optional()?)
    }

    fn end_run(&mut self, r: &RunRow) -> Result<usize> {
        Ok(self.cached_exec(
            "UPDATE runs SET status = ?2, exit_code = ?3, signal = ?4, reason = ?5, ended_at = ?6, log_bytes = ?7, redactions = ?8, detail = ?9 WHERE id = ?1",
            params![r.id, r.status, r.exit_code, r.signal, r.reason, r.ended_at, r.log_bytes, r.redactions, r.detail],
        )?)
    }

    fn set_run_detail(&mut self, id: &str, detail: &str) -> Result<()> {
        self.cached_exec(
            "UPDATE runs SET detail = ?2 WHERE id = ?1",
            params![id, detail],
        )?;
        Ok(())
    }

    fn list_runs(
        &mut self,
        agent: Option<&str>,
        member: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<RunRow>> {
        let limit = limit.map_or(-1, |l| l as i64);
        let mut stmt = self.prepare_cached(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE (?1 IS NULL OR agent = ?1) AND (?3 IS NULL OR member = ?3) ORDER BY started_at DESC, id DESC LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![agent, limit, member], run)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn runs_by_prefix(&mut self, prefix: &str) -> Result<Vec<RunRow>> {
        let pattern = format!("{}%", prefix.replace(['%', '_'], ""));
        let mut stmt = self.prepare_cached(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE id LIKE ?1 LIMIT 2"
        ))?;
        let rows = stmt.query_map([pattern], run)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn orphaned_runs(&mut self, is_alive: IsAlive<'_>) -> Result<Vec<Orphan>> {
        let mut stmt = self
            .prepare_cached("SELECT id, pid, member, agent FROM runs WHERE status = 'running'")?;
        let rows: Vec<(String, Option<i64>, Option<String>, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows
            .into_iter()
            .filter(|(_, pid, _, _)| !pid.is_some_and(is_alive))
            .map(|(id, _, member, agent)| (id, member, agent))
            .collect())
    }

    fn mark_lost(&mut self, id: &str, at: &str) -> Result<()> {
        self.cached_exec(
            "UPDATE runs SET status = 'lost', ended_at = ?2 WHERE id = ?1",
            params![id, at],
        )?;
        Ok(())
    }

    fn run_for_delivery(&mut self, delivery: &str) -> Result<Option<String>> {
        Ok(self
            .cached_row(
                "SELECT id FROM runs WHERE json_extract(detail, '$.delivery') = ?1 LIMIT 1",
                [delivery],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn run_exists(&mut self, id: &str) -> Result<bool> {
        Ok(self
            .cached_row("SELECT 1 FROM runs WHERE id = ?1", [id], |_| Ok(()))
            .optional()?
            .is_some())
    }
}
