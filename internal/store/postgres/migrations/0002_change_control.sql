-- Change control (internal/control, docs/change-control.md).
-- Each row keeps its object as JSON text in doc (text, not jsonb: updates
-- compare it byte for byte with the value read before); the other columns
-- repeat what queries select on.

CREATE TABLE change_requests (
	id              TEXT   PRIMARY KEY,
	window_start_ns BIGINT NOT NULL,
	window_end_ns   BIGINT NOT NULL,
	doc             TEXT   NOT NULL
);
CREATE INDEX change_requests_window ON change_requests (window_end_ns, window_start_ns);

CREATE TABLE change_manifests (
	pipeline   TEXT   NOT NULL,
	run        TEXT   NOT NULL,
	created_ns BIGINT NOT NULL,
	expires_ns BIGINT,
	signed     BYTEA  NOT NULL,
	PRIMARY KEY (pipeline, run)
);
CREATE INDEX change_manifests_created ON change_manifests (created_ns);

CREATE TABLE change_events (
	id         BIGSERIAL PRIMARY KEY,
	at_ns      BIGINT    NOT NULL,
	authorized BOOLEAN   NOT NULL,
	doc        TEXT      NOT NULL
);
CREATE INDEX change_events_at ON change_events (at_ns);

CREATE TABLE change_reviews (
	id        TEXT   PRIMARY KEY,
	host      TEXT   NOT NULL,
	path      BYTEA   NOT NULL,
	event_id  BIGINT NOT NULL REFERENCES change_events (id),
	state     TEXT   NOT NULL,
	opened_ns BIGINT NOT NULL,
	doc       TEXT   NOT NULL
);
CREATE INDEX change_reviews_state ON change_reviews (state, opened_ns);
-- Settle looks for an open item of the same change before opening another.
CREATE INDEX change_reviews_path ON change_reviews (path, host) WHERE state = 'open';
