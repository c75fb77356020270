-- Hub and agents (internal/fleet, internal/hub, docs/fleet.md). Same tables
-- and meaning as the SQLite store's 0010_fleet.sql.

CREATE TABLE fleet_users (
	name TEXT PRIMARY KEY,
	role TEXT NOT NULL
);

-- API tokens are kept as SHA-256 hashes: a copy of the database does not
-- give anyone a working token.
CREATE TABLE fleet_api_tokens (
	hash BYTEA PRIMARY KEY,
	usr  TEXT NOT NULL REFERENCES fleet_users (name)
);

CREATE TABLE fleet_enroll_tokens (
	hash       BYTEA PRIMARY KEY,
	grp        TEXT    NOT NULL,
	expires_ns BIGINT NOT NULL,
	creator    TEXT    NOT NULL,
	used_by    TEXT
);

-- One row per enrolled agent; high_water is the last sequence number
-- ingested, moved in the same transaction as the records.
CREATE TABLE fleet_agents (
	id              TEXT PRIMARY KEY,
	host            TEXT    NOT NULL,
	grp             TEXT    NOT NULL,
	cert_serial     TEXT    NOT NULL,
	enrolled_ns     BIGINT NOT NULL,
	last_seen_ns    BIGINT NOT NULL,
	high_water      BIGINT NOT NULL DEFAULT 0,
	silent          BOOLEAN NOT NULL DEFAULT FALSE,
	version         TEXT    NOT NULL DEFAULT '',
	policy_version  TEXT    NOT NULL DEFAULT '',
	baseline_state  TEXT    NOT NULL DEFAULT '',
	watcher_backend TEXT    NOT NULL DEFAULT '',
	watcher_health  TEXT    NOT NULL DEFAULT '',
	spool_depth     BIGINT NOT NULL DEFAULT 0
);

-- Every record agents streamed, in commit order (rid).
CREATE TABLE fleet_records (
	rid      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	agent_id TEXT    NOT NULL,
	seq      BIGINT NOT NULL,
	kind     TEXT    NOT NULL,
	time_ns  BIGINT NOT NULL,
	body     BYTEA    NOT NULL,
	UNIQUE (agent_id, seq)
);

CREATE TABLE fleet_cursors (
	name TEXT PRIMARY KEY,
	v    BIGINT NOT NULL
);
