// Package record defines the change record: the one JSON shape a change
// has everywhere it leaves Vigil (check --json, watch --json, the API, the
// evidence log, NDJSON export). It is specified in docs/json.md.
package record

import (
	"github.com/vigilfim/vigil/internal/change"
	"github.com/vigilfim/vigil/internal/fim"
	"github.com/vigilfim/vigil/internal/policy"
	"github.com/vigilfim/vigil/internal/whodata"
)

// Change is a detected change with the context a reader needs to act on
// it: which rule covers the path, how severe it is, which controls it
// evidences and who owns the files.
type Change struct {
	fim.ChangeJSON
	Rule     string   `json:"rule,omitempty"`
	Severity string   `json:"severity,omitempty"`
	Tags     []string `json:"tags,omitempty"`
	Owners   []string `json:"owners,omitempty"`
	// Verdict is the change-control verdict (docs/change-control.md),
	// set when the policy has change-control sections.
	Verdict *change.Verdict `json:"verdict,omitempty"`
}

// New builds the record of c found under rule (which may be nil when the
// rule is unknown, e.g. for a path no longer covered).
func New(c *fim.Change, rule *policy.Rule) *Change {
	r := &Change{ChangeJSON: *c.JSON()}
	if rule != nil {
		r.Rule = rule.Name
		r.Severity = rule.Severity.String()
		r.Tags = rule.Tags
		r.Owners = rule.Owners
	}
	return r
}

// Problem is an entry that could not be examined. Problems make a check
// incomplete; they are never silently dropped.
type Problem struct {
	Path    string `json:"path"`
	PathB64 string `json:"path_b64,omitempty"`
	Error   string `json:"error"`
}

// NewProblem builds the record of a failure to examine path.
func NewProblem(path string, err error) Problem {
	p := Problem{Error: err.Error()}
	p.Path, p.PathB64 = fim.EncodeName(path)
	return p
}

// Summary counts what a check saw.
type Summary struct {
	Baseline    string   `json:"baseline"`
	Generation  uint64   `json:"generation"`
	Roots       []string `json:"roots"`
	Entries     int64    `json:"entries"`
	Added       int      `json:"added"`
	Removed     int      `json:"removed"`
	Modified    int      `json:"modified"`
	Problems    int      `json:"problems"`
	FilesHashed int64    `json:"files_hashed"`
	BytesHashed int64    `json:"bytes_hashed"`
	Full        bool     `json:"full"`
	DurationMS  int64    `json:"duration_ms"`
}

// Changes returns the number of changes counted.
func (s *Summary) Changes() int { return s.Added + s.Removed + s.Modified }

// Report is the document `vigil check --json` prints.
type Report struct {
	Summary  Summary   `json:"summary"`
	Changes  []*Change `json:"changes"`
	Problems []Problem `json:"problems"`
}

// Transient is the change type, in watch records only, of a path that
// changed and was back in its previous state when it was examined (a file
// created and deleted, or written and restored, within moments). It is
// reported rather than dropped: a change that leaves no trace is exactly
// what an attacker would try.
const Transient = "transient"

// Observed is a change seen by `vigil watch`: the change record plus when
// it was seen, how, and who made it.
type Observed struct {
	*Change
	// Time is when the change was seen, RFC 3339 with nanoseconds.
	Time string `json:"time"`
	// Source is fanotify, inotify, audit, rescan or startup.
	Source string `json:"source"`
	// Who made the change; it says explicitly when that is not known.
	Who *whodata.Who `json:"who"`
	// Events is how many kernel events were merged into this record.
	Events int `json:"events,omitempty"`
	// MultipleWriters is set when several processes wrote the path within
	// the coalescing window; Who is the last of them.
	MultipleWriters bool `json:"multiple_writers,omitempty"`
}

// HealthRecord is a watch line about the monitoring itself: started,
// stopped, fell back to another backend, lost events, rescanned.
type HealthRecord struct {
	Time   string `json:"time"`
	Type   string `json:"type"` // always "health"
	Health any    `json:"health"`
}
