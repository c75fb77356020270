-- Hub features (docs/fleet.md): per-group signed policies and agent
-- revocation. Same tables and meaning as the SQLite store's migration.

-- revoked_ns is 0 while the agent may connect; once set, every request with
-- any of its certificates is refused.
ALTER TABLE fleet_agents ADD COLUMN revoked_ns BIGINT NOT NULL DEFAULT 0;

-- One policy per host group, as the admin uploaded it (source) and as the
-- hub signed it for agents (signed: a signed note).
CREATE TABLE fleet_policies (
	grp        TEXT PRIMARY KEY,
	version    TEXT   NOT NULL,
	source     BYTEA  NOT NULL,
	signed     BYTEA  NOT NULL,
	updated_ns BIGINT NOT NULL,
	updated_by TEXT   NOT NULL
);
