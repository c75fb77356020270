// Package control wires change control end to end: it opens the store of
// change requests, manifests, classified changes and review items (SQLite
// by default, PostgreSQL by DSN), gathers for each change what the pure
// classifier in internal/change needs (the requests around the change's
// time, the manifests valid then, the package database's answer), and
// settles each verdict: an authorized change is accepted into the baseline
// with a note naming its authority, an unauthorized one opens a review
// item. The CLI's change, manifest, review and report commands and the
// check and watch commands all go through a Controller.
//
// The model, the formats and a worked example are in
// docs/change-control.md.
package control

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/vigilfim/vigil/internal/change"
	"github.com/vigilfim/vigil/internal/change/pkgdb"
	"github.com/vigilfim/vigil/internal/policy"
	"github.com/vigilfim/vigil/internal/store"
	"github.com/vigilfim/vigil/internal/store/postgres"
	"github.com/vigilfim/vigil/internal/store/sqlite"
)

// Store is what the controller needs from a database; sqlite.DB and
// postgres.DB implement it and pass the same conformance suite
// (storetest.RunChangeControl).
type Store interface {
	CreateRequest(ctx context.Context, r change.Request) error
	PutRequest(ctx context.Context, r change.Request) error
	UpdateRequest(ctx context.Context, prev, next change.Request) error
	Request(ctx context.Context, id string) (change.Request, error)
	Requests(ctx context.Context, from, to time.Time) ([]change.Request, error)
	PutManifest(ctx context.Context, m store.Manifest) error
	Manifests(ctx context.Context, at time.Time) ([]store.Manifest, error)
	RecordEvent(ctx context.Context, e store.ChangeEvent, review *change.ReviewItem) (store.ChangeEvent, *change.ReviewItem, error)
	Events(ctx context.Context, from, to time.Time, fn func(store.ChangeEvent) error) error
	Event(ctx context.Context, id int64) (store.ChangeEvent, error)
	Review(ctx context.Context, id string) (change.ReviewItem, error)
	UpdateReview(ctx context.Context, prev, next change.ReviewItem) error
	Reviews(ctx context.Context, state change.ReviewState) ([]change.ReviewItem, error)
	OpenReviews(ctx context.Context, host, path string) ([]change.ReviewItem, error)
	Close() error
}

var (
	_ Store = (*sqlite.DB)(nil)
	_ Store = (*postgres.DB)(nil)
)

// ErrNoChangeControl is returned by Open for a policy without people,
// roles, pipelines or sod sections: there is nothing to classify against.
var ErrNoChangeControl = errors.New("the policy has no change-control sections (people, roles, pipelines, sod)")

// requestSlack is how far before and after a change the store is asked
// for requests: a request whose window ended or starts within it is
// judged (and named in the explanation) even though it can't authorize
// the change, so "outside_window" beats a bare "no_change_request".
const requestSlack = 24 * time.Hour

// Options tune a Controller. The zero value is the production setting.
type Options struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Packages, when set, is the package database to consult instead of
	// the dpkg database of the running system (opened lazily, reopened
	// when dpkg's status file changes).
	Packages pkgdb.DB
	// DpkgRoot is the root whose /var/lib/dpkg is read; "" means "/".
	DpkgRoot string
}

// Controller classifies and settles changes against one policy's
// change-control configuration and one store. It is safe for concurrent
// use.
type Controller struct {
	st  Store
	cl  *change.Classifier
	pol *policy.Policy
	now func() time.Time

	// approvers are the roles that may approve (and so reject) requests.
	approvers map[string]bool
	// emergency is sod.emergency_approval, for Recheck's look-back.
	emergency time.Duration

	pkgs    pkgdb.DB // fixed by Options, or nil
	dpkg    dpkgCache
	verify  sync.Mutex
	checked map[string]checkedManifest // by signed bytes
}

// Config decodes and compiles the change-control sections of a policy.
// Errors name the policy file and the line in it.
func Config(pol *policy.Policy) (*change.Classifier, error) {
	cc := pol.ChangeControl
	if cc.Empty() {
		return nil, ErrNoChangeControl
	}
	cfg, err := change.ParseConfig(cc.Source)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cc.File, err)
	}
	cl, err := cfg.Compile()
	if err != nil {
		return nil, positionErrors(cc, err)
	}
	return cl, nil
}

// OpenStore opens the store at dsn: a postgres:// or postgresql:// URL (or
// a "host=... dbname=..." string) for PostgreSQL, anything else is the
// path of a SQLite file.
func OpenStore(ctx context.Context, dsn string) (Store, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") || strings.Contains(dsn, "dbname=") {
		return postgres.Open(ctx, dsn)
	}
	return sqlite.Open(ctx, dsn)
}

// Open opens the store at dsn (see OpenStore) and compiles the policy's
// change-control configuration.
func Open(ctx context.Context, dsn string, pol *policy.Policy, opt Options) (*Controller, error) {
	cl, err := Config(pol)
	if err != nil {
		return nil, err
	}
	st, err := OpenStore(ctx, dsn)
	if err != nil {
		return nil, err
	}
	return New(st, cl, pol, opt), nil
}

// New returns a controller over an open store; Close closes the store.
func New(st Store, cl *change.Classifier, pol *policy.Policy, opt Options) *Controller {
	c := &Controller{st: st, cl: cl, pol: pol, now: opt.Now, pkgs: opt.Packages,
		checked: map[string]checkedManifest{}}
	if c.now == nil {
		c.now = time.Now
	}
	c.approvers = map[string]bool{}
	c.emergency = change.DefaultEmergencyApproval
	// The sections compiled into cl already, so they parse.
	if cfg, err := change.ParseConfig(pol.ChangeControl.Source); err == nil {
		if cfg.SoD.EmergencyApproval > 0 {
			c.emergency = cfg.SoD.EmergencyApproval
		}
		for _, r := range cfg.Roles {
			if r.Approve {
				c.approvers[r.Name] = true
			}
		}
	}
	c.dpkg.root = opt.DpkgRoot
	if c.dpkg.root == "" {
		c.dpkg.root = "/"
	}
	return c
}

// Close closes the store.
func (c *Controller) Close() error { return c.st.Close() }

// Classifier returns the compiled change-control configuration.
func (c *Controller) Classifier() *change.Classifier { return c.cl }

// Store returns the store, for commands that list what it holds.
func (c *Controller) Store() Store { return c.st }

// Policy returns the policy the controller was opened with.
func (c *Controller) Policy() *policy.Policy { return c.pol }
