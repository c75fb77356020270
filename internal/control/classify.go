package control

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/vigilfim/vigil/internal/change"
	"github.com/vigilfim/vigil/internal/change/manifest"
	"github.com/vigilfim/vigil/internal/change/pkgdb"
	"github.com/vigilfim/vigil/internal/fim"
)

// Classify decides whether a change was authorized. host names the
// machine, at is when the change was made (the who-data's event time, or
// when it was detected), who the who-data (nil for a scan, which has
// none). It reads the requests and manifests from the store and, for a
// file some package owns, the package database; the decision itself is
// change.Classifier.Classify.
func (c *Controller) Classify(ctx context.Context, host string, ch *fim.Change, at time.Time, who *change.Actor) (change.Verdict, error) {
	in, err := c.Input(ctx, host, ch, at, who)
	if err != nil {
		return change.Verdict{}, err
	}
	return c.cl.Classify(in), nil
}

// Input gathers what Classify looks at, for callers that want to see it.
func (c *Controller) Input(ctx context.Context, host string, ch *fim.Change, at time.Time, who *change.Actor) (change.Input, error) {
	in := change.Input{Change: *ch, Host: host, At: at.UTC(), Now: c.now().UTC(), Actor: who}
	var err error
	if in.Requests, err = c.st.Requests(ctx, at.Add(-requestSlack), at.Add(requestSlack)); err != nil {
		return in, fmt.Errorf("classify %s: %w", ch.Path, err)
	}
	if in.Manifests, in.Rejected, err = c.manifests(ctx, at); err != nil {
		return in, fmt.Errorf("classify %s: %w", ch.Path, err)
	}
	if in.Package, err = c.packageEvidence(ctx, ch); err != nil {
		return in, fmt.Errorf("classify %s: %w", ch.Path, err)
	}
	return in, nil
}

// checkedManifest caches the verification of one stored manifest.
type checkedManifest struct {
	v   *manifest.Verified
	rej *change.RejectedManifest
}

// manifests returns the stored manifests valid at t, verified again with
// the policy's keys (a key removed from the policy stops authorizing).
// Those no registered key signs any more are returned as rejected, so
// the changes they list get unknown_signer; broken ones are left out.
func (c *Controller) manifests(ctx context.Context, t time.Time) ([]*manifest.Verified, []change.RejectedManifest, error) {
	ms, err := c.st.Manifests(ctx, t)
	if err != nil {
		return nil, nil, err
	}
	c.verify.Lock()
	defer c.verify.Unlock()
	var ok []*manifest.Verified
	var rej []change.RejectedManifest
	for _, m := range ms {
		cm, seen := c.checked[string(m.Signed)]
		if !seen {
			v, err := c.cl.Keyring().Open(m.Signed)
			var us *manifest.UnknownSignerError
			switch {
			case err == nil:
				cm.v = v
			case errors.As(err, &us) && us.Manifest != nil:
				cm.rej = &change.RejectedManifest{Manifest: us.Manifest, Reason: change.UnknownSigner,
					Detail: "signed by " + strings.Join(us.Signers, ", ") + ", no registered pipeline key"}
			}
			// Bounded: one entry per stored manifest valid now.
			c.checked[string(m.Signed)] = cm
		}
		switch {
		case cm.v != nil:
			ok = append(ok, cm.v)
		case cm.rej != nil:
			rej = append(rej, *cm.rej)
		}
	}
	return ok, rej, nil
}

// packageEvidence asks the package database about a changed file's new
// content. Only added or modified regular files with a content digest can
// be package content.
func (c *Controller) packageEvidence(ctx context.Context, ch *fim.Change) (*change.PackageEvidence, error) {
	if ch.New == nil || ch.New.Type != fim.TypeFile || ch.New.Content.IsZero() {
		return nil, nil
	}
	db := c.pkgs
	if db == nil {
		d, err := c.dpkg.get(ctx)
		if err != nil {
			return nil, err
		}
		if d == nil {
			return nil, nil
		}
		db = d
	}
	ev, err := pkgdb.Check(ctx, db, ch.Path, ch.New.Content.Alg)
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, pkgdb.ErrNotRegular):
		// Gone or replaced since the scan: the package can't vouch for
		// content nobody can read any more.
		return nil, nil
	case err != nil:
		return nil, err
	}
	return ev, nil
}

// dpkgCache opens the dpkg database on first use and again whenever
// dpkg's status file changes (dpkg rewrites it after every run).
type dpkgCache struct {
	root string
	mu   sync.Mutex
	db   *pkgdb.Dpkg
	mod  time.Time
}

func (d *dpkgCache) get(ctx context.Context) (*pkgdb.Dpkg, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fi, err := os.Stat(filepath.Join(d.root, "var/lib/dpkg/status"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read dpkg status: %w", err)
	}
	if d.db != nil && fi.ModTime().Equal(d.mod) {
		return d.db, nil
	}
	db, err := pkgdb.OpenDpkg(ctx, d.root)
	if err != nil {
		return nil, err
	}
	d.db, d.mod = db, fi.ModTime()
	return db, nil
}
