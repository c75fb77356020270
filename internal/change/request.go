package change

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
)

// State is where a change request stands.
type State string

// Request states. A request is opened, then approved or rejected, and
// finally closed. Closing keeps the approvals: changes made in the window
// while it was approved stay authorized.
const (
	StateOpen     State = "open"
	StateApproved State = "approved"
	StateRejected State = "rejected"
	StateClosed   State = "closed"
)

// Window is when a request's changes may be made: [Start, End).
type Window struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// Contains reports whether t lies in the window.
func (w Window) Contains(t time.Time) bool { return !t.Before(w.Start) && t.Before(w.End) }

// Decision is an approval or a rejection: who, when, and why.
type Decision struct {
	By   string    `json:"by"`
	At   time.Time `json:"at"`
	Note string    `json:"note,omitempty"`
}

// Request is a change request, usually mirrored from a ticketing system
// (the ID is free text, such as a ServiceNow or Jira key). People are
// named by their directory IDs.
type Request struct {
	ID           string   `json:"id"`
	Title        string   `json:"title"`
	Requester    string   `json:"requester"`
	Implementers []string `json:"implementers"`
	Scope        Scope    `json:"scope"`
	Window       Window   `json:"window"`
	// Emergency requests may be implemented before approval but must be
	// approved within the configured time after each change
	// (sod.emergency_approval).
	Emergency bool       `json:"emergency,omitempty"`
	State     State      `json:"state"`
	Approvals []Decision `json:"approvals,omitempty"`
	Rejection *Decision  `json:"rejection,omitempty"`
	Opened    time.Time  `json:"opened"`
	Closed    *time.Time `json:"closed,omitempty"`
}

// Relation is how a person is tied to a request, in a self-approval.
type Relation string

// Relations that forbid approving.
const (
	Requested   Relation = "requested"
	Implementer Relation = "implementer"
)

// SelfApprovalError refuses an approval by the request's requester or one
// of its implementers: nobody approves their own change.
type SelfApprovalError struct {
	Approver string
	Request  string
	Relation Relation
}

func (e *SelfApprovalError) Error() string {
	if e.Relation == Requested {
		return fmt.Sprintf("%s cannot approve %s: %s requested it", e.Approver, e.Request, e.Approver)
	}
	return fmt.Sprintf("%s cannot approve %s: %s is one of its implementers", e.Approver, e.Request, e.Approver)
}

// TransitionError refuses an operation that the state of a change request
// or a review item does not allow.
type TransitionError struct {
	// ID names the request ("CHG-1") or the review item ("review R-1").
	ID   string
	Op   string
	From string
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("cannot %s %s: it is %s", e.Op, e.ID, e.From)
}

// ErrInvalidRequest is wrapped by every validation error of a request.
var ErrInvalidRequest = errors.New("invalid change request")

// limits on request fields, so an import can't carry megabytes per field.
const (
	maxIDLen    = 256
	maxTextLen  = 4096
	maxListLen  = 1000
	maxDecision = 100
)

// validateFields checks what Open needs: everything but state and
// decisions.
func (r *Request) validateFields() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if err := checkText("id", r.ID, maxIDLen); err != nil {
		errs = append(errs, err)
	}
	if err := checkText("title", r.Title, maxTextLen); err != nil {
		errs = append(errs, err)
	}
	if err := checkText("requester", r.Requester, maxIDLen); err != nil {
		errs = append(errs, err)
	}
	if len(r.Implementers) == 0 {
		bad("implementers is empty")
	}
	if len(r.Implementers) > maxListLen {
		bad("more than %d implementers", maxListLen)
	}
	for _, p := range r.Implementers {
		if err := checkText("implementer", p, maxIDLen); err != nil {
			errs = append(errs, err)
		}
	}
	if len(r.Scope.Paths)+len(r.Scope.Hosts) > maxListLen {
		bad("scope has more than %d globs", maxListLen)
	}
	if err := r.Scope.validate(); err != nil {
		bad("scope: %v", err)
	}
	if r.Window.Start.IsZero() || r.Window.End.IsZero() || !r.Window.End.After(r.Window.Start) {
		bad("window: want start before end")
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w %q: %w", ErrInvalidRequest, r.ID, err)
	}
	return nil
}

func checkText(field, v string, max int) error {
	switch {
	case strings.TrimSpace(v) == "":
		return fmt.Errorf("%s is empty", field)
	case len(v) > max:
		return fmt.Errorf("%s is longer than %d bytes", field, max)
	case strings.IndexFunc(v, unicode.IsControl) >= 0:
		return fmt.Errorf("%s %q contains control characters", field, v)
	}
	return nil
}

// Validate checks a whole request, as imported or loaded: fields, a known
// state consistent with its decisions, and no self-approval.
func (r *Request) Validate() error {
	if err := r.validateFields(); err != nil {
		return err
	}
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	switch r.State {
	case StateOpen, StateApproved, StateRejected, StateClosed:
	default:
		bad("unknown state %q", r.State)
	}
	if r.Opened.IsZero() {
		bad("opened is missing")
	}
	if len(r.Approvals) > maxDecision {
		bad("more than %d approvals", maxDecision)
	}
	seen := map[string]bool{}
	for _, a := range r.Approvals {
		if err := checkText("approver", a.By, maxIDLen); err != nil {
			errs = append(errs, err)
		}
		if seen[a.By] {
			bad("%s approved twice", a.By)
		}
		seen[a.By] = true
		if err := r.checkApprover(a.By); err != nil {
			errs = append(errs, err)
		}
		if a.At.Before(r.Opened) {
			bad("approval by %s predates the request", a.By)
		}
	}
	if r.State == StateApproved && len(r.Approvals) == 0 {
		bad("state is approved but there is no approval")
	}
	if (r.State == StateRejected) != (r.Rejection != nil) && r.State != StateClosed {
		bad("a rejection is recorded exactly when the state is rejected")
	}
	if r.State == StateClosed && r.Closed == nil {
		bad("state is closed but closed time is missing")
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w %q: %w", ErrInvalidRequest, r.ID, err)
	}
	return nil
}

func (r *Request) checkApprover(by string) error {
	switch {
	case by == r.Requester:
		return &SelfApprovalError{Approver: by, Request: r.ID, Relation: Requested}
	case slices.Contains(r.Implementers, by):
		return &SelfApprovalError{Approver: by, Request: r.ID, Relation: Implementer}
	}
	return nil
}

// clone copies the request deeply so transitions never alias the input.
func (r Request) clone() Request {
	r.Implementers = slices.Clone(r.Implementers)
	r.Scope.Paths = slices.Clone(r.Scope.Paths)
	r.Scope.Hosts = slices.Clone(r.Scope.Hosts)
	r.Approvals = slices.Clone(r.Approvals)
	if r.Rejection != nil {
		d := *r.Rejection
		r.Rejection = &d
	}
	if r.Closed != nil {
		t := *r.Closed
		r.Closed = &t
	}
	return r
}

// Open validates a new request and returns it opened at the given time.
// The request must not have a state yet.
func Open(r Request, at time.Time) (Request, error) {
	if r.State != "" {
		return Request{}, &TransitionError{ID: r.ID, Op: "open", From: string(r.State)}
	}
	if err := r.validateFields(); err != nil {
		return Request{}, err
	}
	r = r.clone()
	r.State, r.Opened = StateOpen, at
	r.Approvals, r.Rejection, r.Closed = nil, nil, nil
	return r, nil
}

// Approve records an approval by the given person. It is refused with a
// *SelfApprovalError for the requester or an implementer, and with a
// *TransitionError unless the request is open or already approved (a
// second approver may add theirs). Whether the person may approve at all
// is the directory's business: see Classifier.Approve.
func (r Request) Approve(by string, at time.Time, note string) (Request, error) {
	if r.State != StateOpen && r.State != StateApproved {
		return Request{}, &TransitionError{ID: r.ID, Op: "approve", From: stateName(r.State)}
	}
	if err := checkText("approver", by, maxIDLen); err != nil {
		return Request{}, fmt.Errorf("approve %s: %w", r.ID, err)
	}
	if err := r.checkApprover(by); err != nil {
		return Request{}, err
	}
	if slices.ContainsFunc(r.Approvals, func(d Decision) bool { return d.By == by }) {
		return Request{}, fmt.Errorf("approve %s: %s already approved it", r.ID, by)
	}
	if at.Before(r.Opened) {
		return Request{}, fmt.Errorf("approve %s: approval time %s predates the request", r.ID, at.Format(time.RFC3339))
	}
	r = r.clone()
	r.State = StateApproved
	r.Approvals = append(r.Approvals, Decision{By: by, At: at, Note: note})
	return r, nil
}

// Reject records a rejection. Changes made before it, while the request
// was approved, stay authorized; later ones are not.
func (r Request) Reject(by string, at time.Time, note string) (Request, error) {
	if r.State != StateOpen && r.State != StateApproved {
		return Request{}, &TransitionError{ID: r.ID, Op: "reject", From: stateName(r.State)}
	}
	if err := checkText("rejecter", by, maxIDLen); err != nil {
		return Request{}, fmt.Errorf("reject %s: %w", r.ID, err)
	}
	r = r.clone()
	r.State = StateRejected
	r.Rejection = &Decision{By: by, At: at, Note: note}
	return r, nil
}

// Close ends the request: no change made after at is authorized by it.
func (r Request) Close(at time.Time) (Request, error) {
	if r.State == StateClosed || r.State == "" {
		return Request{}, &TransitionError{ID: r.ID, Op: "close", From: stateName(r.State)}
	}
	r = r.clone()
	r.State = StateClosed
	r.Closed = &at
	return r, nil
}

func stateName(s State) string {
	if s == "" {
		return "not opened"
	}
	return string(s)
}

// NotApproverError refuses an approval by someone the directory does not
// allow to approve.
type NotApproverError struct {
	Approver string
	Request  string
	Unknown  bool // not in the directory at all
}

func (e *NotApproverError) Error() string {
	if e.Unknown {
		return fmt.Sprintf("%s cannot approve %s: no such person in the directory", e.Approver, e.Request)
	}
	return fmt.Sprintf("%s cannot approve %s: no role of theirs allows approving", e.Approver, e.Request)
}

// Approve is Request.Approve after checking the directory: the approver
// must be a known person holding a role that may approve.
func (c *Classifier) Approve(r Request, by string, at time.Time, note string) (Request, error) {
	// The SoD refusal comes first: it is the more useful answer to someone
	// trying to approve their own change.
	if err := r.checkApprover(by); err != nil {
		return Request{}, err
	}
	p, ok := c.people[by]
	if !ok {
		return Request{}, &NotApproverError{Approver: by, Request: r.ID, Unknown: true}
	}
	if !c.mayApprove(p) {
		return Request{}, &NotApproverError{Approver: by, Request: r.ID}
	}
	return r.Approve(by, at, note)
}
