//! The PostgreSQL schema, versioned: each entry migrates from version
//! `index` to `index + 1`, in one transaction under an advisory lock, so
//! that several nodes starting at once migrate once.
//!
//! The tables mirror the SQLite store's (secrets, the keyed audit chain and
//! its seal, runs, delivery claims), plus what several nodes share: their
//! leases (`nodes`), the agents' run slots across the cluster (`slots`) and
//! each cron firing (`firings`). Times of records are RFC 3339 text, as in
//! SQLite (text order is time order); leases use the database's clock.

/// The advisory lock key under which the schema is migrated and a store is
/// initialised ("sv-schema").
pub(crate) const SCHEMA_LOCK: i64 = 0x7376_2d73_6368_656d;

pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: everything a store holds, and what nodes share.
    r#"
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value BYTEA NOT NULL
    );
    CREATE TABLE secrets (
        scope       TEXT NOT NULL CHECK (scope IN ('team', 'personal')),
        owner       TEXT COLLATE "C" NOT NULL,  -- '' for team secrets
        name        TEXT COLLATE "C" NOT NULL,
        description TEXT,
        version     BIGINT NOT NULL,
        nonce       BYTEA NOT NULL,
        ciphertext  BYTEA NOT NULL,
        created_at  TEXT NOT NULL,
        created_by  TEXT NOT NULL,
        updated_at  TEXT NOT NULL,
        updated_by  TEXT NOT NULL,
        PRIMARY KEY (scope, owner, name)
    );
    CREATE TABLE audit (
        seq       BIGINT PRIMARY KEY,
        at        TEXT NOT NULL,
        actor     TEXT,
        action    TEXT NOT NULL,
        detail    TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash      TEXT NOT NULL,
        subject   TEXT
    );
    CREATE INDEX audit_by_subject ON audit (subject, seq) WHERE subject IS NOT NULL;
    CREATE FUNCTION supervisor_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'the audit log is append-only'; END
    $$;
    CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit
        FOR EACH ROW EXECUTE FUNCTION supervisor_audit_append_only();
    CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
        FOR EACH STATEMENT EXECUTE FUNCTION supervisor_audit_append_only();
    CREATE TABLE audit_seal (
        id      INTEGER PRIMARY KEY CHECK (id = 1),
        anchor  BIGINT NOT NULL,
        seq     BIGINT NOT NULL,
        hash    TEXT NOT NULL,
        secrets TEXT NOT NULL,
        mac     TEXT NOT NULL
    );
    CREATE TABLE runs (
        id          TEXT COLLATE "C" PRIMARY KEY,
        agent       TEXT NOT NULL,
        trigger     TEXT NOT NULL,
        member      TEXT,
        node        TEXT NOT NULL,           -- the process that runs it (see nodes)
        status      TEXT NOT NULL,
        exit_code   INTEGER,
        signal      INTEGER,
        reason      TEXT,
        started_at  TEXT COLLATE "C" NOT NULL,
        ended_at    TEXT,
        log_bytes   BIGINT NOT NULL DEFAULT 0,
        redactions  BIGINT NOT NULL DEFAULT 0,
        detail      TEXT NOT NULL DEFAULT '{}',
        delivery    TEXT                     -- the webhook delivery it answers
    );
    CREATE INDEX runs_by_agent ON runs (agent, id);
    CREATE INDEX runs_by_started ON runs (started_at DESC, id DESC);
    CREATE INDEX runs_running ON runs (node) WHERE status = 'running';
    CREATE INDEX runs_by_delivery ON runs (delivery) WHERE delivery IS NOT NULL;
    CREATE TABLE deliveries (
        source  TEXT NOT NULL,
        key     TEXT NOT NULL,
        seen_at BIGINT NOT NULL,
        PRIMARY KEY (source, key)
    );
    CREATE INDEX deliveries_by_age ON deliveries (source, seen_at);
    CREATE TABLE pending (
        source  TEXT NOT NULL,
        key     TEXT NOT NULL,
        meta    TEXT NOT NULL DEFAULT '',
        body    BYTEA NOT NULL,
        at      BIGINT NOT NULL,
        node    TEXT NOT NULL,               -- the node that answered it
        seq     BIGSERIAL,
        PRIMARY KEY (source, key)
    );
    CREATE TABLE nodes (
        id           TEXT PRIMARY KEY,
        host         TEXT NOT NULL,
        pid          BIGINT NOT NULL,
        started_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
        heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    CREATE TABLE slots (
        token TEXT PRIMARY KEY,
        agent TEXT NOT NULL,
        node  TEXT NOT NULL,
        at    TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    CREATE INDEX slots_by_agent ON slots (agent);
    CREATE TABLE firings (
        schedule   TEXT NOT NULL,
        at         TEXT COLLATE "C" NOT NULL,  -- the instant it is due, RFC 3339
        node       TEXT NOT NULL,
        state      TEXT NOT NULL CHECK (state IN ('queued', 'active', 'done', 'skipped', 'lost')),
        claimed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (schedule, at)
    );
    CREATE INDEX firings_open ON firings (schedule, at) WHERE state IN ('queued', 'active');
    "#,
    // 2: a secret whose value a run's output showed (redacted): the last such run, when,
    // and how many runs since the value was last set.
    r#"
    ALTER TABLE secrets ADD COLUMN leaked_run TEXT;
    ALTER TABLE secrets ADD COLUMN leaked_at TEXT;
    ALTER TABLE secrets ADD COLUMN leaked_runs BIGINT NOT NULL DEFAULT 0;
    "#,
];
