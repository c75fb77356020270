package store

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/vigilfim/vigil/internal/change"
)

// Errors every backend returns (wrapped) for the change-control tables, so
// that callers branch the same way whatever the database.
var (
	// ErrNotFound: no row with that key.
	ErrNotFound = errors.New("not found")
	// ErrExists: a row with that key exists already (and differs).
	ErrExists = errors.New("already exists")
	// ErrConflict: a compare-and-set update found the row changed since it
	// was read; read it again and retry.
	ErrConflict = errors.New("changed by someone else meanwhile")
)

// Manifest is a deployment manifest as submitted: the signed bytes are
// kept exactly as received and verified again whenever they are used, so
// a key removed from the policy stops authorizing. Pipeline, Run, Created
// and Expires repeat what the manifest says, for indexing.
type Manifest struct {
	Pipeline string
	Run      string
	Created  time.Time
	Expires  *time.Time
	Signed   []byte
}

// ChangeEvent is one classified change: the population change-control
// reports are made of. ID is assigned by the store.
type ChangeEvent struct {
	ID   int64     `json:"id"`
	Host string    `json:"host"`
	Path string    `json:"path"`
	At   time.Time `json:"at"`
	// Source is the command that found the change: "check" or "watch".
	Source string `json:"source"`
	// Change is the JSON change record (internal/record).
	Change json.RawMessage `json:"change"`
	// Actor is the who-data, nil for a scan.
	Actor   *change.Actor  `json:"actor,omitempty"`
	Verdict change.Verdict `json:"verdict"`
	// Review is the review item opened for an unauthorized change.
	Review string `json:"review,omitempty"`
	// Baseline says how an authorized change reached the baseline
	// ("accepted automatically"), or why it could not.
	Baseline string `json:"baseline,omitempty"`
}
