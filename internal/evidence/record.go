package evidence

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// Record kinds written by Vigil. Kind is an open set (any name matching
// [a-z][a-z0-9_]{0,31} is accepted) so later features can add kinds without
// a format change; these are the ones the rest of Vigil uses.
const (
	KindChange        = "change"         // a detected change with who-data and verdict
	KindReview        = "review"         // a review decision on an unauthorized change
	KindChangeRequest = "change_request" // a change request created or edited
	KindApproval      = "approval"       // an approval or rejection of a change request
	KindAcceptance    = "acceptance"     // a baseline acceptance (promotion)
	KindPolicyLoad    = "policy_load"    // a policy (re)loaded, with its digest
	KindHealth        = "health"         // a watcher or scanner health event
	KindUserAction    = "user_action"    // any other action a user took
	KindPrune         = "prune"          // a retention prune (written by Log.Prune)
)

// Limits on record fields. They bound the memory a decoder commits to a
// single leaf and keep a hostile database or bundle from making the verifier
// allocate without bound. The body limit leaves room for a change record that
// carries a full argv and ACL on both sides.
const (
	MaxKindLen  = 32
	MaxHostLen  = 255
	MaxActorLen = 1024
	MaxBodyLen  = 1 << 20
)

// ErrInvalidRecord is wrapped by every error about a record that cannot be
// appended because a field breaks the limits or syntax above.
var ErrInvalidRecord = errors.New("invalid record")

// Record is one entry of the evidence log as a caller hands it in.
type Record struct {
	// Kind names what the record is about: one of the Kind constants.
	Kind string
	// Time is when the event happened (not when it was logged). It is kept
	// to the nanosecond in UTC.
	Time time.Time
	// Host is the host the event concerns (empty for hub-level events).
	Host string
	// Actor is who caused the event: a user name, "uid=0 auid=1000", or a
	// component such as "vigil/watch".
	Actor string
	// Body is the canonical JSON of the kind's typed payload: a JSON object
	// with no insignificant white space (see NewRecord).
	Body json.RawMessage
}

// NewRecord builds a Record whose Body is payload marshalled with
// encoding/json, which is deterministic for structs (field order) and maps
// (sorted keys): the same payload always gives the same leaf.
func NewRecord(kind string, t time.Time, host, actor string, payload any) (Record, error) {
	body, err := json.Marshal(payload)
	if err != nil {
		return Record{}, fmt.Errorf("marshal %s payload: %w", kind, err)
	}
	r := Record{Kind: kind, Time: t, Host: host, Actor: actor, Body: body}
	// json.Marshal's output is valid JSON; parsing it again here cost a
	// watcher under bursts about 4% of its CPU. Append validates fully.
	if err := r.validate(false); err != nil {
		return Record{}, err
	}
	return r, nil
}

// Validate reports whether r can be encoded as a leaf. It does not modify r;
// Log compacts the body of a record whose JSON is valid but not compact.
func (r Record) Validate() error { return r.validate(true) }

func (r Record) validate(parseBody bool) error {
	if err := validKind(r.Kind); err != nil {
		return err
	}
	if r.Time.IsZero() {
		return fmt.Errorf("%w: zero time", ErrInvalidRecord)
	}
	if ns := r.Time.UnixNano(); !time.Unix(0, ns).Equal(r.Time) {
		return fmt.Errorf("%w: time %s is outside the years 1678..2262 that nanoseconds since 1970 cover", ErrInvalidRecord, r.Time)
	}
	if err := validText("host", r.Host, MaxHostLen); err != nil {
		return err
	}
	if err := validText("actor", r.Actor, MaxActorLen); err != nil {
		return err
	}
	if len(r.Body) == 0 || len(r.Body) > MaxBodyLen {
		return fmt.Errorf("%w: body is %d bytes, want 1..%d", ErrInvalidRecord, len(r.Body), MaxBodyLen)
	}
	if parseBody && !json.Valid(r.Body) {
		return fmt.Errorf("%w: body is not valid JSON", ErrInvalidRecord)
	}
	if r.Body[0] != '{' {
		return fmt.Errorf("%w: body is not a JSON object", ErrInvalidRecord)
	}
	return nil
}

// canonical returns r with its body compacted, so that two callers handing
// in the same JSON with different white space log the same leaf.
func (r Record) canonical() (Record, error) {
	if err := r.Validate(); err != nil {
		return Record{}, err
	}
	if isCompact(r.Body) {
		return r, nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, r.Body); err != nil {
		return Record{}, fmt.Errorf("%w: compact body: %v", ErrInvalidRecord, err)
	}
	if buf.Len() > MaxBodyLen {
		return Record{}, fmt.Errorf("%w: body too long", ErrInvalidRecord)
	}
	r.Body = buf.Bytes()
	return r, nil
}

// isCompact reports whether valid JSON b contains no white space outside
// strings, i.e. whether json.Compact would return it unchanged.
func isCompact(b []byte) bool {
	inString, escaped := false, false
	for _, c := range b {
		switch {
		case escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case !inString && (c == ' ' || c == '\t' || c == '\n' || c == '\r'):
			return false
		}
	}
	return true
}

func validKind(k string) error {
	if len(k) == 0 || len(k) > MaxKindLen {
		return fmt.Errorf("%w: kind %q must be 1..%d bytes", ErrInvalidRecord, k, MaxKindLen)
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		ok := c >= 'a' && c <= 'z' || i > 0 && (c >= '0' && c <= '9' || c == '_')
		if !ok {
			return fmt.Errorf("%w: kind %q must match [a-z][a-z0-9_]*", ErrInvalidRecord, k)
		}
	}
	return nil
}

func validText(field, s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%w: %s is %d bytes, want at most %d", ErrInvalidRecord, field, len(s), max)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalidRecord, field)
	}
	return nil
}
