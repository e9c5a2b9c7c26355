//! The shared backend: a PostgreSQL database that several supervisors (the
//! nodes of one team) use at once.
//!
//! How the store's synchronous callers reach it: through the `postgres`
//! client, which drives its connection on a runtime of its own and so must
//! never be called on a thread inside another tokio runtime (the daemon's
//! blocking threads, `supervisor run`'s single thread). [`Postgres::call`]
//! runs the work in place on a plain thread, and on a scoped thread of its
//! own when the caller is inside a runtime: the caller waits either way, as
//! it waits for SQLite's disk. A closed connection is opened again at the
//! next call; a database that cannot be reached is
//! [`StoreError::Unreachable`], naming the database without its password.
//!
//! Durability: [`Sync::Full`] commits with `synchronous_commit = on` (on
//! disk, and on any synchronous standby, before the commit returns),
//! whatever the server's default; [`Sync::Normal`] with `off`.

pub(crate) mod claims;
pub(crate) mod cluster;
mod schema;
mod tx;

use std::time::Duration;

use postgres::{Client, IsolationLevel, NoTls};
use secrecy::{ExposeSecret, SecretString};

use crate::backend::{Appends, Sync, Tx};
use crate::{Result, StoreError};
pub(crate) use tx::PgTx;

/// How long connecting may take before the database counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Server-side limits of every session: a lock wait ends like SQLite's busy
/// timeout, and a node frozen inside a transaction (holding the seal) is
/// cut off instead of stalling every other node.
const SESSION_OPTIONS: &str =
    "-c lock_timeout=30s -c idle_in_transaction_session_timeout=60s -c statement_timeout=60s";

/// Where a PostgreSQL store lives, parsed from the configured URL. Holds
/// the password; never printed (see [`PgLocation::place`]).
#[derive(Clone)]
pub struct PgLocation {
    config: postgres::Config,
    place: String,
    /// How long a node may go without renewing its lease before live nodes
    /// take its runs for lost.
    pub lease: Duration,
}

impl std::fmt::Debug for PgLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgLocation({}, lease {:?})", self.place, self.lease)
    }
}

impl PgLocation {
    /// Parses a `postgres://` URL (or a `key=value` connection string).
    /// Errors never repeat the text, which may hold a password.
    pub fn parse(url: &SecretString, lease: Duration) -> Result<PgLocation> {
        let text = url.expose_secret().trim();
        let mut config: postgres::Config = text.parse().map_err(|_| {
            StoreError::BadUrl(
                "it is not a PostgreSQL connection URL (postgres://USER:PASSWORD@HOST:PORT/DATABASE)"
                    .into(),
            )
        })?;
        if config.get_hosts().is_empty() {
            return Err(StoreError::BadUrl("it names no host".into()));
        }
        if config.get_dbname().is_none() {
            return Err(StoreError::BadUrl("it names no database".into()));
        }
        if config.get_ssl_mode() == postgres::config::SslMode::Require {
            return Err(StoreError::BadUrl(
                "it requires TLS (sslmode=require), which this supervisor does not speak to PostgreSQL: use a Unix socket, loopback, or a private network or tunnel".into(),
            ));
        }
        let options = match config.get_options() {
            Some(o) if !o.is_empty() => format!("{o} {SESSION_OPTIONS}"),
            _ => SESSION_OPTIONS.to_owned(),
        };
        let timeout = *config.get_connect_timeout().unwrap_or(&CONNECT_TIMEOUT);
        config
            .options(&options)
            .application_name("supervisor")
            .connect_timeout(timeout)
            .keepalives_idle(Duration::from_secs(10))
            .tcp_user_timeout(Duration::from_secs(20));
        let place = place(&config);
        Ok(PgLocation {
            config,
            place,
            lease,
        })
    }

    /// The database as it may be shown: host, port and database name,
    /// never the user's password.
    pub fn place(&self) -> &str {
        &self.place
    }
}

fn place(config: &postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => String::new(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().unwrap_or_default();
    format!("postgres://{host}:{port}/{db}")
}

/// A connection that has not been used for this long is checked (one round
/// trip) before it is used again: a database restarted meanwhile would
/// otherwise fail the first call made on it.
const IDLE_CHECK: Duration = Duration::from_millis(250);

/// A connection to the shared database, and this process's node id.
pub(crate) struct Postgres {
    location: PgLocation,
    client: Option<Client>,
    last_used: std::time::Instant,
    /// This process among the nodes (fresh at each start).
    pub(crate) node: String,
}

impl Postgres {
    /// Connects and migrates the schema.
    pub(crate) fn open(location: &PgLocation, node: &str) -> Result<Postgres> {
        let mut db = Postgres {
            location: location.clone(),
            client: None,
            last_used: std::time::Instant::now(),
            node: node.to_owned(),
        };
        db.call(|c, _| migrate(c))?;
        Ok(db)
    }

    pub(crate) fn place(&self) -> &str {
        &self.location.place
    }

    pub(crate) fn lease(&self) -> Duration {
        self.location.lease
    }

    /// Runs `f` with a connection, off any tokio runtime's thread (see the
    /// module's notes). A connection error drops the connection, so the
    /// next call opens a fresh one.
    pub(crate) fn call<T: Send>(
        &mut self,
        f: impl FnOnce(&mut Client, &Ctx<'_>) -> Result<T> + Send,
    ) -> Result<T> {
        if tokio::runtime::Handle::try_current().is_err() {
            return self.call_here(f);
        }
        std::thread::scope(|s| {
            s.spawn(|| self.call_here(f))
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    fn call_here<T>(&mut self, f: impl FnOnce(&mut Client, &Ctx<'_>) -> Result<T>) -> Result<T> {
        let idle = self.last_used.elapsed() > IDLE_CHECK;
        self.last_used = std::time::Instant::now();
        if idle
            && let Some(client) = self.client.as_mut()
            && client.is_valid(CONNECT_TIMEOUT).is_err()
        {
            self.client = None;
        }
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = None;
            let client = self
                .location
                .config
                .connect(NoTls)
                .map_err(|e| unreachable(&self.location.place, &e))?;
            self.client = Some(client);
        }
        let client = self.client.as_mut().expect("connected above");
        let ctx = Ctx {
            node: &self.node,
            lease: self.location.lease,
        };
        let out = f(client, &ctx);
        if let Err(StoreError::Postgres(e)) = &out
            && (e.is_closed() || e.as_db_error().is_none())
        {
            let reason = e.to_string();
            self.client = None;
            return Err(StoreError::Unreachable {
                place: self.location.place.clone(),
                reason,
            });
        }
        out
    }

    /// Runs `f` in a read-only transaction on one snapshot.
    pub(crate) fn read<T: Send>(
        &mut self,
        f: impl FnOnce(&mut dyn Tx) -> Result<T> + Send,
    ) -> Result<T> {
        self.call(|client, ctx| {
            let tx = client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let mut tx = PgTx::new(tx, ctx);
            let out = f(&mut tx)?;
            tx.commit()?;
            Ok(out)
        })
    }

    /// Runs `f` in a write transaction. One that appends to the audit log
    /// locks the seal row first, so appends from every node queue there and
    /// the chain stays one chain (and, always taken first, the lock cannot
    /// deadlock with the rows a transaction touches after it).
    pub(crate) fn write<T: Send>(
        &mut self,
        sync: Sync,
        appends: Appends,
        f: impl FnOnce(&mut dyn Tx) -> Result<T> + Send,
    ) -> Result<T> {
        self.call(|client, ctx| {
            let mut tx = client.transaction()?;
            tx.batch_execute(match sync {
                Sync::Full => "SET LOCAL synchronous_commit TO on",
                Sync::Normal => "SET LOCAL synchronous_commit TO off",
            })?;
            if appends == Appends::Yes {
                tx.execute("SELECT 1 FROM audit_seal WHERE id = 1 FOR UPDATE", &[])?;
            }
            let mut tx = PgTx::new(tx, ctx);
            let out = f(&mut tx)?;
            tx.commit()?;
            Ok(out)
        })
    }

    /// Runs `f` in a transaction that holds the schema lock (first
    /// initialisation of a store, migrations).
    pub(crate) fn exclusive<T: Send>(
        &mut self,
        f: impl FnOnce(&mut dyn Tx) -> Result<T> + Send,
    ) -> Result<T> {
        self.call(|client, ctx| {
            let mut tx = client.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&schema::SCHEMA_LOCK])?;
            tx.batch_execute("SET LOCAL synchronous_commit TO on")?;
            let mut tx = PgTx::new(tx, ctx);
            let out = f(&mut tx)?;
            tx.commit()?;
            Ok(out)
        })
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // The client ends its own runtime as it closes: never on a thread
        // inside another runtime.
        if let Some(client) = self.client.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                std::thread::scope(|s| {
                    s.spawn(move || drop(client));
                });
            } else {
                drop(client);
            }
        }
    }
}

/// What the transaction code needs to know of its connection.
pub(crate) struct Ctx<'a> {
    pub node: &'a str,
    pub lease: Duration,
}

fn unreachable(place: &str, e: &postgres::Error) -> StoreError {
    match e.as_db_error() {
        // The server answered: a wrong password, a missing database.
        Some(db) => StoreError::Refused {
            place: place.to_owned(),
            reason: db.message().to_owned(),
        },
        None => StoreError::Unreachable {
            place: place.to_owned(),
            reason: e.to_string(),
        },
    }
}

/// The schema version of the database (0 for an empty one).
fn version(client: &mut impl postgres::GenericClient) -> Result<i32> {
    let exists: bool = client
        .query_one("SELECT to_regclass('supervisor_schema') IS NOT NULL", &[])?
        .get(0);
    if !exists {
        return Ok(0);
    }
    Ok(client
        .query_opt("SELECT version FROM supervisor_schema", &[])?
        .map_or(0, |r| r.get(0)))
}

/// Brings the schema to the newest version this binary knows, once, under
/// the schema lock. A database already there is only read: the role a node
/// connects with needs no right to change the schema after `init`.
fn migrate(client: &mut Client) -> Result<()> {
    let known = schema::MIGRATIONS.len() as i32;
    let found = version(client)?;
    if found > known {
        return Err(StoreError::SchemaTooNew {
            place: "the PostgreSQL database".into(),
            found: i64::from(found),
            known: i64::from(known),
        });
    }
    if found == known {
        return Ok(());
    }
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&schema::SCHEMA_LOCK])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS supervisor_schema (version INTEGER NOT NULL);
         SET LOCAL synchronous_commit TO on;",
    )?;
    // Another node may have migrated while we waited for the lock.
    let current = version(&mut tx)?;
    if tx
        .query_opt("SELECT version FROM supervisor_schema", &[])?
        .is_none()
    {
        tx.execute("INSERT INTO supervisor_schema (version) VALUES (0)", &[])?;
    }
    if current > known {
        return Err(StoreError::SchemaTooNew {
            place: "the PostgreSQL database".into(),
            found: i64::from(current),
            known: i64::from(known),
        });
    }
    for (version, sql) in schema::MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.batch_execute(sql)?;
        tx.execute(
            "UPDATE supervisor_schema SET version = $1",
            &[&(version as i32 + 1)],
        )?;
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<PgLocation> {
        PgLocation::parse(&SecretString::from(url.to_owned()), Duration::from_secs(30))
    }

    #[test]
    fn a_url_is_shown_without_its_password() {
        let pg = parse("postgres://node:hunter2-sentinel@db.internal:6543/team").unwrap();
        assert_eq!(pg.place(), "postgres://db.internal:6543/team");
        assert!(!format!("{pg:?}").contains("hunter2"));
        assert!(!format!("{pg:?}").contains("node:"));
        let kv =
            parse("host=/run/postgresql dbname=team user=node password=hunter2-sentinel").unwrap();
        assert_eq!(kv.place(), "postgres:///run/postgresql:5432/team");
    }

    #[test]
    fn unusable_urls_are_refused_without_repeating_them() {
        for (url, want) in [
            (
                "mysql://node:hunter2-sentinel@db/team",
                "not a PostgreSQL connection URL",
            ),
            (
                "postgres://node:hunter2-sentinel@db.internal:5432",
                "names no database",
            ),
            (
                "postgres://node:hunter2-sentinel@db/team?sslmode=require",
                "requires TLS",
            ),
            (
                "postgres://node:hunter2-sentinel@db/team?port=notaport",
                "not a PostgreSQL",
            ),
        ] {
            let err = parse(url).unwrap_err().to_string();
            assert!(err.contains(want), "{url}: {err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn session_limits_are_added_to_the_options_given() {
        let pg = parse("postgres://n@h/db?options=-c%20search_path%3Dteam").unwrap();
        let options = pg.config.get_options().unwrap();
        assert!(options.starts_with("-c search_path=team "), "{options}");
        assert!(options.contains("lock_timeout=30s"), "{options}");
    }
}
