package scan

import (
	"context"
	"errors"
	"io/fs"
	"sync/atomic"

	"github.com/vigilfim/vigil/internal/fim"
	"github.com/vigilfim/vigil/internal/fsys"
)

// work finishes jobs until jobs is closed or ctx is done. A job it takes
// is always finished (its slot marked done, its directory released), even
// when ctx is cancelled mid-way.
func work(ctx context.Context, jobs <-chan *slot, full bool, hashed *atomic.Int64) {
	progress := func(n int64) { hashed.Add(n) }
	for {
		select {
		case s, ok := <-jobs:
			if !ok {
				return
			}
			process(ctx, s, full, progress)
			s.dir.release()
			s.dir = nil
			close(s.done)
		case <-ctx.Done():
			return
		}
	}
}

// process stats the slot's path and, where the rule asks for content,
// reuses the baseline's digest when the fingerprint is unchanged or hashes
// the file.
func process(ctx context.Context, s *slot, full bool, progress func(int64)) {
	it := &s.item
	rule := it.Rule
	lstat := func(what fim.AttrSet) (*fim.Entry, error) {
		if s.dir != nil {
			return s.dir.d.Lstat(s.name, it.Path, what)
		}
		return fsys.LstatAttrs(it.Path, what)
	}
	// Extended attributes and ACLs cost a listxattr call per entry, more
	// than the lstat itself. Setting either moves ctime, so with an
	// unchanged fingerprint the baseline's values still hold: reuse them,
	// as for content, unless a full check asks to read everything.
	what := rule.Check.Attrs
	reuseXattrs := !full && it.Old != nil && (what.Has(fim.AttrXattrs) || what.Has(fim.AttrACL))
	if reuseXattrs {
		what = what.Without(fim.AttrXattrs).Without(fim.AttrACL)
	}
	e, err := lstat(what)
	if reuseXattrs && e != nil && err == nil {
		if old := it.Old; old.Type == e.Type && old.Fingerprint() == e.Fingerprint() {
			e.Xattrs, e.ACL = old.Xattrs, old.ACL
		} else {
			e, err = lstat(rule.Check.Attrs)
		}
	}
	if e == nil {
		switch {
		case !errors.Is(err, fs.ErrNotExist):
			it.Status, it.Err = Failed, err
		case it.Old != nil:
			it.Status = Missing
		default:
			s.drop = true // appeared and vanished during the scan
		}
		return
	}
	it.New = e
	if err != nil {
		it.Status, it.Err = Failed, err
		return
	}
	it.Status = Scanned
	if e.Type != fim.TypeFile || !rule.Check.Attrs.Has(fim.AttrContent) && !rule.Check.Growing {
		return
	}
	alg := rule.Hash
	if alg == fim.HashNone {
		alg = fim.SHA256 // the policy asked for content without naming a hash
	}
	old := it.Old
	if !full && old != nil && old.Type == fim.TypeFile && old.Content.Alg == alg && len(old.Content.Sum) > 0 &&
		old.Fingerprint() == e.Fingerprint() {
		e.Content = old.Content
		if rule.Check.Growing {
			it.Prefix = old.Content
		}
		return
	}
	req := fsys.HashRequest{Alg: alg, Growing: rule.Check.Growing, Progress: progress}
	if rule.Check.Growing && old != nil && old.Type == fim.TypeFile && !old.Content.IsZero() && e.Size >= old.Size {
		req.PrefixAlg, req.PrefixLen = old.Content.Alg, old.Size
	}
	var r fsys.HashResult
	if s.dir != nil {
		r, err = s.dir.d.Hash(ctx, s.name, it.Path, e, req)
	} else {
		r, err = fsys.Hash(ctx, it.Path, e, req)
	}
	if err != nil {
		it.Status, it.Err = Failed, err
		return
	}
	e.Content, it.Prefix, it.Rehashed = r.Sum, r.Prefix, true
}
