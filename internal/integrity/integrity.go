// Package integrity runs Vigil's integrity engine end to end: it builds
// signed baselines from scans, checks trees against them, and accepts the
// current state of paths into a new baseline generation. It joins the
// scanner, the baseline store and the pure comparison in fim; callers (the
// CLI, the watcher, the agent) only choose what to do with the results.
package integrity

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/vigilfim/vigil/internal/baseline"
	"github.com/vigilfim/vigil/internal/fim"
	"github.com/vigilfim/vigil/internal/policy"
	"github.com/vigilfim/vigil/internal/record"
	"github.com/vigilfim/vigil/internal/scan"
)

// Results receives what a scan finds, in walk order.
type Results interface {
	// Change is called for every difference from the baseline.
	Change(c *fim.Change, rule *policy.Rule) error
	// Problem is called for every entry that could not be examined.
	Problem(path string, err error) error
}

// Options tune a scan.
type Options struct {
	// Workers is the number of concurrent stat and hash workers; 0 picks
	// the scanner's default.
	Workers int
	// Full re-hashes every file instead of trusting unchanged fingerprints.
	Full bool
	// Limit restricts the scan to these subtrees.
	Limit []string
	// Progress, if set, is called periodically during the scan.
	Progress func(scan.Progress)
}

func (o Options) scan() scan.Options {
	return scan.Options{Workers: o.Workers, Full: o.Full, Limit: o.Limit, Progress: o.Progress}
}

// Build scans the trees of pol and writes a new signed baseline at path,
// replacing any previous one atomically. policySrc is the canonical policy
// text stored in the baseline so later checks use the same rules.
// Entries that cannot be read are recorded with what could be read and
// reported through res; the baseline is still written.
func Build(ctx context.Context, path string, signer note.Signer, pol *policy.Policy, policySrc []byte, by baseline.Actor, note string, opt Options, res Results) (record.Summary, error) {
	start := time.Now()
	sum := record.Summary{Baseline: path, Roots: pol.Roots(), Full: true}
	host, _ := os.Hostname()
	now := time.Now().UTC()
	w, err := baseline.Create(path, signer, baseline.Header{
		Created:    now,
		Hostname:   host,
		Generation: 1,
		Policy:     policySrc,
		Roots:      pol.Roots(),
		Acceptances: []baseline.Acceptance{{
			ID: 0, Time: now, Actor: by, Note: note, Paths: pol.Roots(),
		}},
	})
	if err != nil {
		return sum, err
	}
	defer w.Abort()
	stats, err := scan.Run(ctx, pol, nil, opt.scan(), func(it *scan.Item) error {
		if it.Err != nil {
			sum.Problems++
			if err := res.Problem(it.Path, it.Err); err != nil {
				return err
			}
		}
		if it.New == nil {
			return nil
		}
		sum.Entries++
		return w.Add(it.New, 0)
	})
	if err != nil {
		return sum, fmt.Errorf("scan: %w", err)
	}
	if err := w.Commit(); err != nil {
		return sum, err
	}
	sum.Generation = 1
	sum.FilesHashed, sum.BytesHashed = stats.Hashed, stats.BytesHashed
	sum.DurationMS = time.Since(start).Milliseconds()
	return sum, nil
}

// Check compares the file system with the baseline read by r under pol,
// reporting each change and problem through res in walk order.
func Check(ctx context.Context, r *baseline.Reader, pol *policy.Policy, opt Options, res Results) (record.Summary, error) {
	start := time.Now()
	h := r.Header()
	sum := record.Summary{Generation: h.Generation, Roots: pol.Roots(), Full: opt.Full}
	if len(opt.Limit) > 0 {
		sum.Roots = opt.Limit
	}
	stats, err := scan.Run(ctx, pol, r, opt.scan(), func(it *scan.Item) error {
		switch it.Status {
		case scan.OutOfScope:
			return nil
		case scan.Failed:
			sum.Problems++
			sum.Entries++
			return res.Problem(it.Path, it.Err)
		case scan.Missing:
			c, _ := ItemChange(it)
			sum.Removed++
			return res.Change(&c, pol.Lookup(it.Path))
		}
		sum.Entries++
		c, changed := ItemChange(it)
		if !changed {
			return nil
		}
		switch c.Kind {
		case fim.Added:
			sum.Added++
		case fim.Modified:
			sum.Modified++
		}
		return res.Change(&c, it.Rule)
	})
	if err != nil {
		return sum, fmt.Errorf("check: %w", err)
	}
	sum.FilesHashed, sum.BytesHashed = stats.Hashed, stats.BytesHashed
	sum.DurationMS = time.Since(start).Milliseconds()
	return sum, nil
}

// AcceptResult says what an accept did.
type AcceptResult struct {
	Generation uint64
	Accepted   int // changes taken into the baseline, each also passed to Results.Change
	Problems   int // entries left as they were because they could not be read
}

// Accept takes the current state of the given paths (every root if none)
// into a new generation of the baseline at path, recording who did it and
// why. Entries that cannot be read keep their baseline state and are
// reported: an accept never records what it did not see.
func Accept(ctx context.Context, path string, signer note.Signer, verifier note.Verifier, pol *policy.Policy, paths []string, by baseline.Actor, note string, opt Options, res Results) (*AcceptResult, error) {
	r, err := baseline.Open(path, verifier)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	h := r.Header()
	now := time.Now().UTC()
	id := uint32(len(h.Acceptances))
	accepted := paths
	if len(accepted) == 0 {
		accepted = pol.Roots()
	}
	nh := h
	nh.Generation = h.Generation + 1
	nh.Acceptances = append(append([]baseline.Acceptance(nil), h.Acceptances...), baseline.Acceptance{
		ID: id, Time: now, Actor: by, Note: note, Paths: accepted,
	})
	w, err := baseline.Create(path, signer, nh)
	if err != nil {
		return nil, err
	}
	defer w.Abort()
	out := &AcceptResult{Generation: nh.Generation}
	opt.Limit = paths
	_, err = scan.Run(ctx, pol, r, opt.scan(), func(it *scan.Item) error {
		switch it.Status {
		case scan.OutOfScope:
			return w.Add(it.Old, it.OldTag)
		case scan.Failed:
			out.Problems++
			if err := res.Problem(it.Path, it.Err); err != nil {
				return err
			}
			if it.Old != nil {
				return w.Add(it.Old, it.OldTag)
			}
			return nil
		case scan.Missing:
			c, _ := ItemChange(it)
			out.Accepted++
			return res.Change(&c, pol.Lookup(it.Path))
		}
		c, changed := ItemChange(it)
		tag := it.OldTag
		if changed {
			tag = id
			out.Accepted++
			if err := res.Change(&c, it.Rule); err != nil {
				return err
			}
		}
		return w.Add(it.New, tag)
	})
	if err != nil {
		return nil, fmt.Errorf("accept: %w", err)
	}
	if err := r.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		return nil, fmt.Errorf("read baseline %s: %w", path, err)
	}
	if err := w.Commit(); err != nil {
		return nil, err
	}
	return out, nil
}

// ItemChange turns a scanned or missing item into the change from its
// baseline entry, compared under its rule (every attribute when it has
// none), and reports whether there is one.
func ItemChange(it *scan.Item) (fim.Change, bool) {
	if it.Status == scan.Missing {
		return fim.Compare(it.Old, nil, fim.Check{}, fim.Digest{})
	}
	check := fim.Check{Attrs: fim.AllAttrs}
	if it.Rule != nil {
		check = it.Rule.Check
	}
	return fim.Compare(it.Old, it.New, check, it.Prefix)
}
