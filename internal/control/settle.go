package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/vigilfim/vigil/internal/change"
	"github.com/vigilfim/vigil/internal/fim"
	"github.com/vigilfim/vigil/internal/store"
)

// Sources of findings, recorded with each change event.
const (
	SourceCheck = "check"
	SourceWatch = "watch"
)

// Finding is a classified change to settle.
type Finding struct {
	Host   string
	Source string // SourceCheck or SourceWatch
	Change *fim.Change
	// Record is the JSON change record (internal/record) as printed.
	Record json.RawMessage
	At     time.Time
	Actor  *change.Actor // nil without who-data
	// Verdict is what Classify returned for the change.
	Verdict change.Verdict
}

// Acceptor takes the current state of paths into the baseline, recording
// who made the change (nil when unknown: a scan) and why it is accepted.
// The CLI implements it with integrity.Accept; tests may record calls.
type Acceptor interface {
	Accept(ctx context.Context, paths []string, who *change.Actor, note string) error
}

// AcceptNote is the note recorded in the baseline for an authorized
// change: it names the authority.
func AcceptNote(v change.Verdict) string {
	if v.By == nil {
		return ""
	}
	n := fmt.Sprintf("authorized by %s %s", v.By.Kind, v.By.ID)
	if v.By.Detail != "" {
		n += " (" + v.By.Detail + ")"
	}
	return n
}

// Settle records each finding as a change event and acts on its verdict.
// Authorized changes are accepted into the baseline through acc (nil:
// nowhere to accept, recorded as such), one acceptance per actor and
// authority so the baseline says who and why for each; unauthorized ones
// open a review item. Every finding is recorded even when an acceptance
// fails; the first error is returned after all are recorded.
func (c *Controller) Settle(ctx context.Context, fs []Finding, acc Acceptor) ([]store.ChangeEvent, error) {
	type group struct {
		who   *change.Actor
		note  string
		paths []string
		idx   []int
	}
	var groups []*group
	key := func(f *Finding) string {
		a, _ := json.Marshal(f.Actor)
		return string(a) + "\x00" + AcceptNote(f.Verdict)
	}
	byKey := map[string]*group{}
	for i := range fs {
		f := &fs[i]
		if !f.Verdict.Authorized {
			continue
		}
		k := key(f)
		g := byKey[k]
		if g == nil {
			g = &group{who: f.Actor, note: AcceptNote(f.Verdict)}
			byKey[k] = g
			groups = append(groups, g)
		}
		g.paths = append(g.paths, f.Change.Path)
		g.idx = append(g.idx, i)
	}
	outcome := make([]string, len(fs))
	var errs []error
	for _, g := range groups {
		msg := "accepted into the baseline: " + g.note
		switch {
		case acc == nil:
			msg = "not accepted: no baseline to accept into"
		default:
			if err := acc.Accept(ctx, g.paths, g.who, g.note); err != nil {
				errs = append(errs, fmt.Errorf("accept authorized changes into the baseline: %w", err))
				msg = "not accepted: " + err.Error()
			}
		}
		for _, i := range g.idx {
			outcome[i] = msg
		}
	}
	evs := make([]store.ChangeEvent, 0, len(fs))
	for i := range fs {
		f := &fs[i]
		if !f.Verdict.Authorized {
			items, err := c.st.OpenReviews(ctx, f.Host, f.Change.Path)
			if err != nil {
				return evs, errors.Join(append(errs, err)...)
			}
			prev, err := c.pending(ctx, items, f)
			if err != nil {
				return evs, errors.Join(append(errs, err)...)
			}
			if prev != nil {
				// The same unaccepted change, found again by the next
				// check: it is one change, with one review item.
				evs = append(evs, *prev)
				continue
			}
		}
		e := store.ChangeEvent{Host: f.Host, Path: f.Change.Path, At: f.At.UTC(), Source: f.Source,
			Change: f.Record, Actor: f.Actor, Verdict: f.Verdict, Baseline: outcome[i]}
		var item *change.ReviewItem
		if !f.Verdict.Authorized {
			it := change.NewReviewItem("", "", f.Host, f.Change.Path, f.Verdict, accountOf(f.Actor), c.now().UTC())
			item = &it
		}
		e, _, err := c.st.RecordEvent(ctx, e, item)
		if err != nil {
			return evs, errors.Join(append(errs, err)...)
		}
		evs = append(evs, e)
	}
	return evs, errors.Join(errs...)
}

// accountOf names the account of a who-data actor, for review items of
// changes no person maps to: the login user if any, else the user.
func accountOf(a *change.Actor) string {
	switch {
	case a == nil:
		return ""
	case a.LoginUser != "":
		return a.LoginUser
	case a.User != "":
		return a.User
	}
	return fmt.Sprintf("uid %d", a.UID)
}

// pending returns the event of an open review item for the same change
// (same path, same kind and new state, same reasons), or nil.
func (c *Controller) pending(ctx context.Context, items []change.ReviewItem, f *Finding) (*store.ChangeEvent, error) {
	want, ok := changeState(f.Record)
	if !ok {
		return nil, nil
	}
	for _, it := range items {
		id, err := strconv.ParseInt(it.ChangeID, 10, 64)
		if err != nil {
			continue
		}
		e, err := c.st.Event(ctx, id)
		if err != nil {
			return nil, err
		}
		if got, ok := changeState(e.Change); ok && got == want && slices.Equal(e.Verdict.Reasons, f.Verdict.Reasons) {
			return &e, nil
		}
	}
	return nil, nil
}

// changeState is the part of a change record that identifies the state
// the change led to: its kind and new entry.
func changeState(rec json.RawMessage) (string, bool) {
	var r struct {
		Type string          `json:"type"`
		New  json.RawMessage `json:"new"`
	}
	if json.Unmarshal(rec, &r) != nil || r.Type == "" {
		return "", false
	}
	return r.Type + "\x00" + string(r.New), true
}
