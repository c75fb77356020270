-- Hub features (docs/fleet.md): per-group signed policies and agent
-- revocation.

-- revoked_ns is 0 while the agent may connect; once set, every request with
-- any of its certificates is refused.
ALTER TABLE fleet_agents ADD COLUMN revoked_ns INTEGER NOT NULL DEFAULT 0;

-- One policy per host group, as the admin uploaded it (source) and as the
-- hub signed it for agents (signed: a signed note).
CREATE TABLE fleet_policies (
	grp        TEXT PRIMARY KEY,
	version    TEXT    NOT NULL,
	source     BLOB    NOT NULL,
	signed     BLOB    NOT NULL,
	updated_ns INTEGER NOT NULL,
	updated_by TEXT    NOT NULL
);
