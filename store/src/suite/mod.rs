//! The backend suite: every case runs against SQLite and against a real
//! PostgreSQL server (started for the run, see `supervisor_tests::postgres`),
//! each case on a fresh store. A backend passes when every case does.
//!
//! Cases play an attacker with write access to the database through
//! [`Raw`], a plain connection beside the store's own (SQL written with
//! `$1`-style parameters, which SQLite reads as `?1`).

mod audit;
mod claims;
mod cluster;
mod runs;
mod secrets;

use std::path::PathBuf;

use supervisor_tests::postgres::PgServer;

use crate::db::Location;
use crate::postgres::PgLocation;
use crate::{MasterKey, Store};

/// A value bound to, or read from, raw SQL.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum V {
    I(i64),
    T(String),
    B(Vec<u8>),
    N,
}

impl V {
    pub(crate) fn i(&self) -> i64 {
        match self {
            V::I(i) => *i,
            other => panic!("not an integer: {other:?}"),
        }
    }

    pub(crate) fn t(&self) -> String {
        match self {
            V::T(t) => t.clone(),
            other => panic!("not text: {other:?}"),
        }
    }

    pub(crate) fn b(&self) -> Vec<u8> {
        match self {
            V::B(b) => b.clone(),
            other => panic!("not bytes: {other:?}"),
        }
    }
}

/// A plain connection to a case's database, for tampering.
pub(crate) enum Raw {
    Sqlite(rusqlite::Connection),
    Pg(Box<postgres::Client>),
}

impl Raw {
    pub(crate) fn exec(&mut self, sql: &str, params: &[V]) -> Result<u64, String> {
        match self {
            Raw::Sqlite(c) => c
                .execute(
                    &sqlite_sql(sql),
                    rusqlite::params_from_iter(params.iter().map(sqlite_value)),
                )
                .map(|n| n as u64)
                .map_err(|e| e.to_string()),
            Raw::Pg(c) => {
                let owned: Vec<Box<dyn postgres::types::ToSql + Sync>> =
                    params.iter().map(pg_value).collect();
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    owned.iter().map(|b| b.as_ref()).collect();
                c.execute(sql, &refs).map_err(|e| e.to_string())
            }
        }
    }

    #[track_caller]
    pub(crate) fn run(&mut self, sql: &str, params: &[V]) {
        if let Err(e) = self.exec(sql, params) {
            panic!("{sql}: {e}");
        }
    }

    #[track_caller]
    pub(crate) fn query(&mut self, sql: &str, params: &[V]) -> Vec<Vec<V>> {
        match self {
            Raw::Sqlite(c) => {
                let mut stmt = c.prepare(&sqlite_sql(sql)).unwrap();
                let n = stmt.column_count();
                stmt.query_map(
                    rusqlite::params_from_iter(params.iter().map(sqlite_value)),
                    |r| {
                        (0..n)
                            .map(|i| {
                                Ok(match r.get_ref(i)? {
                                    rusqlite::types::ValueRef::Integer(i) => V::I(i),
                                    rusqlite::types::ValueRef::Text(t) => {
                                        V::T(String::from_utf8_lossy(t).into_owned())
                                    }
                                    rusqlite::types::ValueRef::Blob(b) => V::B(b.to_vec()),
                                    rusqlite::types::ValueRef::Null => V::N,
                                    rusqlite::types::ValueRef::Real(f) => V::I(f as i64),
                                })
                            })
                            .collect()
                    },
                )
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap()
            }
            Raw::Pg(c) => {
                let owned: Vec<Box<dyn postgres::types::ToSql + Sync>> =
                    params.iter().map(pg_value).collect();
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    owned.iter().map(|b| b.as_ref()).collect();
                c.query(sql, &refs)
                    .unwrap_or_else(|e| panic!("{sql}: {e}"))
                    .iter()
                    .map(|r| {
                        (0..r.len())
                            .map(|i| {
                                use postgres::types::Type;
                                let ty = r.columns()[i].type_().clone();
                                if ty == Type::INT8 {
                                    r.get::<_, Option<i64>>(i).map_or(V::N, V::I)
                                } else if ty == Type::INT4 {
                                    r.get::<_, Option<i32>>(i).map_or(V::N, |v| V::I(v.into()))
                                } else if ty == Type::BYTEA {
                                    r.get::<_, Option<Vec<u8>>>(i).map_or(V::N, V::B)
                                } else if ty == Type::BOOL {
                                    r.get::<_, Option<bool>>(i).map_or(V::N, |v| V::I(v.into()))
                                } else {
                                    r.get::<_, Option<String>>(i).map_or(V::N, V::T)
                                }
                            })
                            .collect()
                    })
                    .collect()
            }
        }
    }

    /// Takes away the guard that keeps the audit log append-only (the
    /// owner of the database file, or of the tables, can).
    pub(crate) fn unguard(&mut self) {
        match self {
            Raw::Sqlite(_) => self.run("DROP TRIGGER IF EXISTS audit_no_update", &[]),
            Raw::Pg(_) => self.run("ALTER TABLE audit DISABLE TRIGGER USER", &[]),
        }
        if let Raw::Sqlite(_) = self {
            self.run("DROP TRIGGER IF EXISTS audit_no_delete", &[]);
        }
    }

    pub(crate) fn is_pg(&self) -> bool {
        matches!(self, Raw::Pg(_))
    }
}

fn sqlite_sql(sql: &str) -> String {
    sql.replace('$', "?")
}

fn sqlite_value(v: &V) -> rusqlite::types::Value {
    match v {
        V::I(i) => rusqlite::types::Value::Integer(*i),
        V::T(t) => rusqlite::types::Value::Text(t.clone()),
        V::B(b) => rusqlite::types::Value::Blob(b.clone()),
        V::N => rusqlite::types::Value::Null,
    }
}

fn pg_value(v: &V) -> Box<dyn postgres::types::ToSql + Sync> {
    match v {
        V::I(i) => Box::new(*i),
        V::T(t) => Box::new(t.clone()),
        V::B(b) => Box::new(b.clone()),
        V::N => Box::new(Option::<String>::None),
    }
}

/// One case's store: where it lives, and a raw connection beside it.
pub(crate) struct Case {
    pub location: Location,
    /// The state directory (for SQLite, the store's own; for PostgreSQL,
    /// where nothing of the store lives).
    pub dir: tempfile::TempDir,
    url: Option<String>,
}

impl Case {
    /// A fresh store, initialised with a key of `byte`s.
    pub(crate) fn store(&self, byte: u8) -> Store {
        Store::init_at(&self.location, &MasterKey::from_bytes([byte; 32])).unwrap()
    }

    pub(crate) fn open(&self, key: Option<u8>) -> crate::Result<Store> {
        let key = key.map(|b| MasterKey::from_bytes([b; 32]));
        Store::open_at(&self.location, key.as_ref())
    }

    pub(crate) fn raw(&self) -> Raw {
        match &self.url {
            None => Raw::Sqlite(
                rusqlite::Connection::open(self.dir.path().join(crate::db::DB_FILE)).unwrap(),
            ),
            Some(url) => Raw::Pg(Box::new(
                postgres::Client::connect(url, postgres::NoTls).unwrap(),
            )),
        }
    }

    pub(crate) fn is_pg(&self) -> bool {
        self.url.is_some()
    }

    /// The PostgreSQL URL of the case's database (as its owner).
    pub(crate) fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }

    /// A location of the same database as another node would see it.
    pub(crate) fn lease(&self) -> std::time::Duration {
        match &self.location {
            Location::Postgres(pg) => pg.lease,
            Location::Sqlite(_) => std::time::Duration::ZERO,
        }
    }

    pub(crate) fn state_dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }
}

type CaseFn = fn(&Case);

/// Every case, by name.
fn cases() -> Vec<(&'static str, CaseFn)> {
    let mut all = Vec::new();
    all.extend(secrets::CASES);
    all.extend(audit::CASES);
    all.extend(runs::CASES);
    all.extend(claims::CASES);
    all.extend(cluster::CASES);
    all
}

fn run_all(backend: &str, mut fresh: impl FnMut() -> Case) {
    let cases = cases();
    for (name, case) in &cases {
        eprintln!("{backend}: {name}");
        case(&fresh());
    }
    eprintln!("{backend}: {} cases passed", cases.len());
}

#[test]
fn sqlite_passes_the_backend_suite() {
    run_all("sqlite", || {
        let dir = tempfile::tempdir().unwrap();
        Case {
            location: Location::Sqlite(dir.path().to_owned()),
            dir,
            url: None,
        }
    });
}

#[test]
fn postgres_passes_the_backend_suite() {
    let Some(server) = PgServer::start("postgres_passes_the_backend_suite") else {
        return;
    };
    run_all("postgres", || {
        let url = server.fresh_database();
        let location = PgLocation::parse(
            &secrecy::SecretString::from(url.clone()),
            std::time::Duration::from_secs(1),
        )
        .unwrap();
        Case {
            location: Location::Postgres(Box::new(location)),
            dir: tempfile::tempdir().unwrap(),
            url: Some(url),
        }
    });
}
