-- Change control (internal/control, docs/change-control.md).
-- Each row keeps its object as JSON in doc; the other columns repeat what
-- queries select on. Updates compare doc with the value read before
-- (compare-and-set), so two approvers never overwrite each other.

CREATE TABLE change_requests (
	id              TEXT    PRIMARY KEY,
	window_start_ns INTEGER NOT NULL,
	window_end_ns   INTEGER NOT NULL,
	doc             TEXT    NOT NULL
);
CREATE INDEX change_requests_window ON change_requests (window_end_ns, window_start_ns);

CREATE TABLE change_manifests (
	pipeline   TEXT    NOT NULL,
	run        TEXT    NOT NULL,
	created_ns INTEGER NOT NULL,
	expires_ns INTEGER,
	signed     BLOB    NOT NULL,
	PRIMARY KEY (pipeline, run)
);
CREATE INDEX change_manifests_created ON change_manifests (created_ns);

CREATE TABLE change_events (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	at_ns      INTEGER NOT NULL,
	authorized INTEGER NOT NULL,
	doc        TEXT    NOT NULL
);
CREATE INDEX change_events_at ON change_events (at_ns);

CREATE TABLE change_reviews (
	id        TEXT    PRIMARY KEY,
	host      TEXT   NOT NULL,
	path      BLOB    NOT NULL,
	event_id  INTEGER NOT NULL REFERENCES change_events (id),
	state     TEXT    NOT NULL,
	opened_ns INTEGER NOT NULL,
	doc       TEXT    NOT NULL
);
CREATE INDEX change_reviews_state ON change_reviews (state, opened_ns);
-- Settle looks for an open item of the same change before opening another.
CREATE INDEX change_reviews_path ON change_reviews (path, host) WHERE state = 'open';
