-- Evidence log (internal/evidence, docs/evidence.md). Same tables and
-- meaning as the SQLite store's 0001_evidence.sql.

CREATE TABLE evidence_leaves (
	idx     BIGINT PRIMARY KEY,
	kind    TEXT   NOT NULL,
	time_ns BIGINT NOT NULL,
	leaf    BYTEA,
	hash    BYTEA  NOT NULL
);

CREATE INDEX evidence_leaves_prune ON evidence_leaves (idx) WHERE kind = 'prune';

CREATE TABLE evidence_nodes (
	level INTEGER NOT NULL,
	idx   BIGINT  NOT NULL,
	hash  BYTEA   NOT NULL,
	PRIMARY KEY (level, idx)
);

CREATE TABLE evidence_checkpoints (
	seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	size       BIGINT NOT NULL,
	created_ns BIGINT NOT NULL,
	note       BYTEA  NOT NULL
);

CREATE TABLE evidence_head (
	id   INTEGER PRIMARY KEY CHECK (id = 1),
	size BIGINT  NOT NULL
);
INSERT INTO evidence_head (id, size) VALUES (1, 0);
