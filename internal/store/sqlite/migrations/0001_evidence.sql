-- Evidence log (internal/evidence, docs/evidence.md).

-- One row per record; idx is the position in the log. kind and time_ns
-- repeat what the leaf holds so retention can select by them; verification
-- checks them against the leaf. leaf is NULL once a prune dropped the
-- payload; hash (the RFC 6962 leaf hash) always stays.
CREATE TABLE evidence_leaves (
	idx     INTEGER PRIMARY KEY,
	kind    TEXT    NOT NULL,
	time_ns INTEGER NOT NULL,
	leaf    BLOB,
	hash    BLOB    NOT NULL
);

-- Prune records are few and verification looks them up first; a partial
-- index costs nothing on the append path for other kinds.
CREATE INDEX evidence_leaves_prune ON evidence_leaves (idx) WHERE kind = 'prune';

-- Interior nodes (level >= 1) of perfect subtrees, for O(log n) proofs.
CREATE TABLE evidence_nodes (
	level INTEGER NOT NULL,
	idx   INTEGER NOT NULL,
	hash  BLOB    NOT NULL,
	PRIMARY KEY (level, idx)
) WITHOUT ROWID;

-- Signed checkpoints in signing order.
CREATE TABLE evidence_checkpoints (
	seq        INTEGER PRIMARY KEY AUTOINCREMENT,
	size       INTEGER NOT NULL,
	created_ns INTEGER NOT NULL,
	note       BLOB    NOT NULL
);

-- The committed size; appends move it with a compare-and-set.
CREATE TABLE evidence_head (
	id   INTEGER PRIMARY KEY CHECK (id = 1),
	size INTEGER NOT NULL
);
INSERT INTO evidence_head (id, size) VALUES (1, 0);
