// Package fleet holds the domain types shared by the hub (internal/hub), the
// agent (internal/agent) and the stores that persist the hub's state: agents,
// the records they stream, users and their roles, and the Store contract the
// SQLite and PostgreSQL stores implement. It does no I/O.
package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Errors callers branch on. The hub maps them to HTTP statuses in one table.
var (
	// ErrNotFound: no such agent, user, token or record.
	ErrNotFound = errors.New("not found")
	// ErrTokenInvalid: an enrolment or API token is unknown, used or expired.
	ErrTokenInvalid = errors.New("invalid token")
	// ErrSequenceGap: a batch does not start right after the agent's
	// high-water mark, so accepting it would lose records.
	ErrSequenceGap = errors.New("sequence gap")
	// ErrReplay: every record of a batch was already ingested.
	ErrReplay = errors.New("batch already ingested")
	// ErrExists: a unique name is taken.
	ErrExists = errors.New("already exists")
	// ErrRevoked: an admin revoked the agent; none of its certificates is
	// accepted any more, and only a new enrolment (a new token, a new
	// agent id) brings the host back.
	ErrRevoked = errors.New("agent revoked")
	// ErrSequenceReused: a batch reuses sequence numbers the hub holds for
	// other records (the agent's spool was restored from a backup).
	ErrSequenceReused = errors.New("sequence numbers reused for different records")
)

// DefaultGroup is the host group of enrolment tokens created without one.
const DefaultGroup = "default"

// ValidGroup reports whether g can name a host group: 1-64 characters of
// [a-z0-9._-], starting with a letter or digit, so that it is safe in
// paths, file names and evidence records.
func ValidGroup(g string) bool {
	if g == "" || len(g) > 64 {
		return false
	}
	for i, c := range g {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '.' || c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

// Role is what a user may do. Roles are not a hierarchy except that an
// admin may do everything an operator may.
type Role string

// Roles.
const (
	RoleAdmin    Role = "admin"    // manages users, tokens and hosts
	RoleApprover Role = "approver" // approves change requests
	RoleOperator Role = "operator" // operates hosts and reviews changes
	RoleAuditor  Role = "auditor"  // reads everything, changes nothing
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool {
	switch r {
	case RoleAdmin, RoleApprover, RoleOperator, RoleAuditor:
		return true
	}
	return false
}

// Record kinds an agent streams.
const (
	KindChange = "change" // a record.Observed change
	KindHealth = "health" // a watcher or agent health event
)

// Record is one record an agent streams: Seq numbers an agent's records
// 1, 2, 3, ... without gaps, so the hub can tell a retry from new data.
type Record struct {
	Seq  uint64          `json:"seq"`
	Kind string          `json:"kind"`
	Time time.Time       `json:"time"`
	Body json.RawMessage `json:"body"`
}

// StoredRecord is a Record as the hub keeps it: RID orders all records of
// all agents as they were committed.
type StoredRecord struct {
	RID     int64
	AgentID string
	Host    string
	Record
}

// Batch is one agent's records in ascending Seq.
type Batch struct {
	AgentID string
	Records []Record
}

// IngestResult is the outcome of one Batch: the agent's high-water mark
// after it, and nil, ErrReplay, ErrSequenceGap or ErrNotFound.
type IngestResult struct {
	HighWater uint64
	Err       error
}

// Status is what an agent reports in its heartbeat.
type Status struct {
	Version        string `json:"version"`
	PolicyVersion  string `json:"policy_version"`
	BaselineState  string `json:"baseline_state"`
	WatcherBackend string `json:"watcher_backend"`
	WatcherHealth  string `json:"watcher_health"`
	SpoolDepth     int64  `json:"spool_depth"`
}

// Agent is one enrolled host as the hub's inventory holds it.
type Agent struct {
	ID         string    `json:"id"`
	Host       string    `json:"host"`
	Group      string    `json:"group"`
	CertSerial string    `json:"cert_serial"`
	Enrolled   time.Time `json:"enrolled"`
	LastSeen   time.Time `json:"last_seen"`
	HighWater  uint64    `json:"high_water"`
	Silent     bool      `json:"silent"`
	// Revoked is when an admin revoked the agent; zero while it may
	// connect.
	Revoked time.Time `json:"revoked,omitzero"`
	Status
}

// Policy is a host group's policy as the hub keeps it: the admin's source
// and the signed note agents receive.
type Policy struct {
	Group     string    `json:"group"`
	Version   string    `json:"version"`
	Source    []byte    `json:"-"`
	Signed    []byte    `json:"-"`
	Updated   time.Time `json:"updated"`
	UpdatedBy string    `json:"updated_by"`
}

// EnrollToken is a one-time enrolment token as stored: only its hash.
type EnrollToken struct {
	Hash    []byte
	Group   string
	Expires time.Time
	Creator string
}

// User is a person or service holding API tokens.
type User struct {
	Name string `json:"name"`
	Role Role   `json:"role"`
}

// Store is the hub's persistence. Implementations: internal/store/sqlite,
// internal/store/postgres; both pass internal/store/storetest.
type Store interface {
	// CreateUser creates a user with one API token (stored as its hash).
	CreateUser(ctx context.Context, u User, tokenHash []byte) error
	// UserByToken returns the user owning the token hash.
	UserByToken(ctx context.Context, tokenHash []byte) (User, error)
	// UserCount returns how many users exist.
	UserCount(ctx context.Context) (int, error)

	// CreateEnrollToken stores a one-time enrolment token.
	CreateEnrollToken(ctx context.Context, t EnrollToken) error
	// Enroll consumes the token (unused and unexpired at now) and creates
	// the agent, in one transaction: a token enrols exactly one agent.
	Enroll(ctx context.Context, tokenHash []byte, now time.Time, a Agent) (Agent, error)
	// SetCertSerial records the agent's current certificate after rotation.
	SetCertSerial(ctx context.Context, agentID, serial string) error

	// SetGroup moves an agent to another host group and returns the group
	// it was in.
	SetGroup(ctx context.Context, agentID, group string) (old string, err error)
	// Revoke marks the agent revoked at now; changed is false (and the
	// agent's first revocation time kept) if it already was.
	Revoke(ctx context.Context, agentID string, now time.Time) (a Agent, changed bool, err error)

	// PutPolicy stores (replacing) a group's policy.
	PutPolicy(ctx context.Context, p Policy) error
	// GroupPolicy returns a group's policy, or ErrNotFound if none was
	// uploaded for it.
	GroupPolicy(ctx context.Context, group string) (Policy, error)

	// Agent returns one agent; Agents all of them ordered by host.
	Agent(ctx context.Context, id string) (Agent, error)
	Agents(ctx context.Context) ([]Agent, error)
	// Heartbeat records the agent's status and last-seen time; it clears
	// Silent and reports whether it was set.
	Heartbeat(ctx context.Context, id string, now time.Time, s Status) (wasSilent bool, err error)
	// MarkSilent sets Silent on agents last seen before cutoff and returns
	// those it changed.
	MarkSilent(ctx context.Context, cutoff time.Time) ([]Agent, error)

	// Ingest stores batches, each for one agent, in one transaction (the
	// hub group-commits batches of many agents), moving each agent's
	// high-water mark in the same transaction as its records. Per batch:
	// records at or below the mark are skipped (retries); if none is left
	// the result is ErrReplay; if the first new record is not mark+1 the
	// result is ErrSequenceGap and nothing of that batch is stored. A
	// returned error means nothing at all was stored.
	Ingest(ctx context.Context, now time.Time, batches []Batch) ([]IngestResult, error)
	// RecordsAfter returns up to limit stored records with RID > rid.
	RecordsAfter(ctx context.Context, rid int64, limit int) ([]StoredRecord, error)
	// AgentRecords returns the agent's stored records with from <= Seq <=
	// to, in Seq order.
	AgentRecords(ctx context.Context, agentID string, from, to uint64) ([]Record, error)
	// RecordCount returns how many records the agent has stored.
	RecordCount(ctx context.Context, agentID string) (int64, error)

	// Cursor and SetCursor keep a named position (the evidence relay's).
	Cursor(ctx context.Context, name string) (int64, error)
	SetCursor(ctx context.Context, name string, v int64) error
}

// NewRecords applies the ingestion rule to one batch against the agent's
// high-water mark hw: it drops records at or below hw and returns the rest
// with the mark they move to. Both stores call it so that they agree.
func NewRecords(hw uint64, recs []Record) ([]Record, IngestResult) {
	i := 0
	for i < len(recs) && recs[i].Seq <= hw {
		i++
	}
	rest := recs[i:]
	if len(rest) == 0 {
		return nil, IngestResult{HighWater: hw, Err: ErrReplay}
	}
	for j, r := range rest {
		if r.Seq != hw+1+uint64(j) {
			return nil, IngestResult{HighWater: hw, Err: ErrSequenceGap}
		}
	}
	return rest, IngestResult{HighWater: rest[len(rest)-1].Seq}
}
