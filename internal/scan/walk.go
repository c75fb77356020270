package scan

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/vigilfim/vigil/internal/fim"
	"github.com/vigilfim/vigil/internal/fsys"
	"github.com/vigilfim/vigil/internal/policy"
)

// slot is one position in the ordered output. Slots the walker can fill
// itself (directories, baseline-only paths) are ready when queued; the
// others (done != nil) are finished by a worker.
type slot struct {
	item Item
	dir  *dirRef // parent directory of a job; the worker releases it
	name string  // name within dir
	done chan struct{}
	drop bool // nothing to report: the path appeared and vanished mid-scan
}

// dirRef shares an open directory between the walker and the jobs for its
// entries; the last one to finish with it closes it.
type dirRef struct {
	d    *fsys.Dir
	refs atomic.Int32
}

func newDirRef(d *fsys.Dir) *dirRef {
	r := &dirRef{d: d}
	r.refs.Store(1)
	return r
}

func (r *dirRef) acquire() {
	if r != nil {
		r.refs.Add(1)
	}
}

func (r *dirRef) release() {
	if r != nil && r.refs.Add(-1) == 0 {
		_ = r.d.Close() // read-only descriptor: nothing to lose
	}
}

// classify decides the status of a baseline entry that the walk did not
// meet, the rule governing it (for Missing and Failed ones) and the error
// for Failed ones.
type classify func(e *fim.Entry) (Status, *policy.Rule, error)

func outOfScope(*fim.Entry) (Status, *policy.Rule, error) { return OutOfScope, nil, nil }

func (w *walker) failedBelow(err error) classify {
	return func(e *fim.Entry) (Status, *policy.Rule, error) { return Failed, w.pol.Lookup(e.Path), err }
}

// walker walks the policy's trees depth first in sorted order, merges the
// baseline in step and queues one slot per path.
type walker struct {
	ctx      context.Context
	pol      *policy.Policy
	limits   []string
	old      oldCursor
	queue    chan<- *slot
	jobs     chan<- *slot
	rootDevs map[*policy.Rule]uint64
	// full: read everything, reusing nothing from the baseline.
	full bool
}

func (w *walker) run() error {
	for _, s := range w.starts() {
		if err := w.drainBefore(s, outOfScope); err != nil {
			return err
		}
		if !w.reachable(s) {
			continue // its baseline entries drain as out of scope
		}
		if err := w.walkStart(s); err != nil {
			return err
		}
	}
	return w.drainBefore("", outOfScope)
}

// starts returns where walks begin: the policy's roots, narrowed to the
// limits, in walk order and none inside another.
func (w *walker) starts() []string {
	roots := w.pol.Roots()
	if len(w.limits) == 0 {
		return roots
	}
	var out []string
	for _, r := range roots {
		for _, l := range w.limits {
			switch {
			case fim.IsWithin(l, r):
				out = append(out, l)
			case fim.IsWithin(r, l):
				out = append(out, r)
			}
		}
	}
	slices.SortFunc(out, fim.ComparePaths)
	kept := out[:0]
	for _, s := range out {
		if len(kept) == 0 || !fim.IsWithin(s, kept[len(kept)-1]) {
			kept = append(kept, s)
		}
	}
	return kept
}

// reachable reports whether a walk from the policy's root would get to
// start: every directory between them is one the walk reads. A limit
// below an excluded directory is not walked.
func (w *walker) reachable(start string) bool {
	i := slices.IndexFunc(w.pol.Roots(), func(r string) bool { return fim.IsWithin(start, r) })
	if i < 0 {
		return false
	}
	root := w.pol.Roots()[i]
	for a := parentOf(start); a != "" && fim.IsWithin(a, root); a = parentOf(a) {
		if !w.candidate(a, w.pol.Lookup(a)) {
			return false
		}
	}
	return true
}

func (w *walker) walkStart(start string) error {
	if start == "/" {
		return w.visit(place{}, "/", "/", fim.TypeDir, outOfScope)
	}
	var pl place
	if r := w.pol.Lookup(start); r != nil && !w.effective(start, r) {
		pl.blocked = r
	}
	pd, err := fsys.OpenDir(parentOf(start))
	if err != nil {
		// Whatever is wrong with the parent shows up again on the start.
		return w.visit(pl, start, start, fim.TypeUnknown, outOfScope)
	}
	parent := newDirRef(pd)
	defer parent.release()
	pst, err := pd.Stat(0)
	if err != nil {
		return w.visit(pl, start, start, fim.TypeUnknown, outOfScope)
	}
	name := start[strings.LastIndexByte(start, '/')+1:]
	typ := fim.TypeUnknown
	if e, err := pd.Lstat(name, start, 0); err == nil {
		typ = e.Type
	}
	pl.parent, pl.parentDev, pl.haveDev = parent, pst.Dev, true
	return w.visit(pl, name, start, typ, outOfScope)
}

// place is where a visited path sits: its parent directory, the parent's
// device when known, and the rule cut off by an excluded ancestor.
type place struct {
	parent    *dirRef
	parentDev uint64
	haveDev   bool
	// blocked is the rule that governs nothing here because a directory
	// above was excluded from it (or too deep for it) and was read only to
	// reach a nested rule's root.
	blocked *policy.Rule
}

// visit handles one path: its own slot, its subtree if it is a directory
// the walk reads, and the baseline entries below it that the walk did not
// meet. typ is the type the directory listing reported (a hint: the
// entry may have changed since).
// cls classifies the baseline entries before path that the walk skipped.
func (w *walker) visit(pl place, name, path string, typ fim.FileType, cls classify) error {
	rule := w.ruleFor(path, pl)
	old, tag, err := w.takeOld(path, cls)
	if err != nil {
		return err
	}
	if (typ == fim.TypeDir || typ == fim.TypeUnknown) && w.candidate(path, rule) {
		return w.walkDir(pl, name, path, rule, old, tag)
	}
	if err := w.leaf(pl.parent, name, path, rule, old, tag); err != nil {
		return err
	}
	return w.drainWithin(path, w.missingBelow(path))
}

// leaf queues a path whose subtree is not walked.
func (w *walker) leaf(parent *dirRef, name, path string, rule *policy.Rule, old *fim.Entry, tag uint32) error {
	switch {
	case rule != nil:
		return w.job(parent, name, path, rule, old, tag)
	case old != nil:
		return w.ready(Item{Path: path, Status: OutOfScope, Old: old, OldTag: tag})
	}
	return nil
}

func (w *walker) walkDir(pl place, name, path string, rule *policy.Rule, old *fim.Entry, tag uint32) error {
	parent := pl.parent
	var d *fsys.Dir
	var err error
	if parent == nil {
		d, err = fsys.OpenDir(path)
	} else {
		d, err = parent.d.OpenDir(name, path)
	}
	if err != nil {
		switch {
		case errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.ELOOP):
			// Not a directory (any more); the worker stats what is there.
			if err := w.leaf(parent, name, path, rule, old, tag); err != nil {
				return err
			}
			return w.drainWithin(path, w.missingBelow(path))
		case errors.Is(err, fs.ErrNotExist):
			if old != nil {
				st := Missing
				if rule == nil {
					st = OutOfScope
				}
				if err := w.ready(Item{Path: path, Status: st, Old: old, OldTag: tag, Rule: rule}); err != nil {
					return err
				}
			}
			return w.drainWithin(path, w.missingBelow(path))
		}
		// Unreadable. Report it even when the directory is only passed
		// through to reach a nested rule: a silent gap is worse.
		if err := w.ready(Item{Path: path, Status: Failed, Old: old, OldTag: tag, Rule: rule, Err: err}); err != nil {
			return err
		}
		return w.drainWithin(path, w.failedBelow(err))
	}
	ref := newDirRef(d)
	defer ref.release()

	var what fim.AttrSet
	if rule != nil {
		what = rule.Check.Attrs
	}
	// As for files (see process): an unchanged fingerprint means unchanged
	// extended attributes and ACL.
	reuseXattrs := !w.full && old != nil && (what.Has(fim.AttrXattrs) || what.Has(fim.AttrACL))
	st, serr := d.Stat(what.Without(fim.AttrXattrs).Without(fim.AttrACL))
	if st != nil && serr == nil && (what.Has(fim.AttrXattrs) || what.Has(fim.AttrACL)) {
		if reuseXattrs && old.Type == st.Type && old.Fingerprint() == st.Fingerprint() {
			st.Xattrs, st.ACL = old.Xattrs, old.ACL
		} else {
			st, serr = d.Stat(what)
		}
	}
	if st == nil {
		if err := w.ready(Item{Path: path, Status: Failed, Old: old, OldTag: tag, Rule: rule, Err: serr}); err != nil {
			return err
		}
		return w.drainWithin(path, w.failedBelow(serr))
	}
	if rule != nil && rule.Path == path {
		w.rootDevs[rule] = st.Dev
	}
	// A mount point is recorded but not descended into, unless the rule
	// allows crossing, the rule starts right here, or a rule's root lies
	// further down.
	descend := !pl.haveDev || st.Dev == pl.parentDev ||
		rule != nil && (rule.CrossFilesystems || rule.Path == path) || w.rootBelow(path)
	var ents []fsys.DirEntry
	var lerr error
	if descend {
		ents, lerr = d.ReadDir()
	}
	switch {
	case lerr != nil:
		if err := w.ready(Item{Path: path, Status: Failed, Old: old, OldTag: tag, New: st, Rule: rule, Err: lerr}); err != nil {
			return err
		}
		return w.drainWithin(path, w.failedBelow(lerr))
	case rule != nil:
		it := Item{Path: path, Status: Scanned, Old: old, OldTag: tag, New: st, Rule: rule}
		if serr != nil {
			it.Status, it.Err = Failed, serr
		}
		if err := w.ready(it); err != nil {
			return err
		}
	case old != nil:
		if err := w.ready(Item{Path: path, Status: OutOfScope, Old: old, OldTag: tag}); err != nil {
			return err
		}
	}
	if !descend {
		return w.drainWithin(path, outOfScope)
	}
	cls := w.missingBelow(path)
	child := place{parent: ref, parentDev: st.Dev, haveDev: true, blocked: pl.blocked}
	if rule == nil {
		// Read only to reach a nested rule: whatever rule covers this
		// directory covers nothing below it.
		child.blocked = w.cover(path)
	}
	for _, de := range ents {
		if err := w.visit(child, de.Name, joinPath(path, de.Name), de.Type, cls); err != nil {
			return err
		}
	}
	return w.drainWithin(path, cls)
}

// ruleFor returns the rule governing path, or nil when the path is not
// recorded: excluded, too deep, or on another file system than its rule's
// root (for rules that don't cross file systems; the mount point itself and
// a rule's own root are recorded).
func (w *walker) ruleFor(path string, pl place) *policy.Rule {
	r := w.pol.Lookup(path)
	if r != nil && r == pl.blocked {
		return nil
	}
	if r == nil || !pl.haveDev || r.CrossFilesystems || r.Path == path {
		return r
	}
	dev, ok := w.rootDevs[r]
	if !ok {
		e, err := fsys.LstatAttrs(r.Path, 0)
		if err != nil {
			return r
		}
		dev = e.Dev
		w.rootDevs[r] = dev
	}
	if dev != pl.parentDev {
		return nil
	}
	return r
}

// cover returns the deepest rule whose root contains path, whether or not
// it governs path.
func (w *walker) cover(path string) *policy.Rule {
	var best *policy.Rule
	for _, r := range w.pol.Rules {
		if fim.IsWithin(path, r.Path) && (best == nil || len(r.Path) > len(best.Path)) {
			best = r
		}
	}
	return best
}

// effective reports whether r = pol.Lookup(path) really governs path: no
// directory between r's root and path is excluded from r or too deep.
// (Policy.Lookup judges a path alone; the walk never reads below a
// directory its rule excludes.)
func (w *walker) effective(path string, r *policy.Rule) bool {
	for a := parentOf(path); a != "" && fim.IsWithin(a, r.Path); a = parentOf(a) {
		if w.pol.Lookup(a) == nil {
			return false
		}
	}
	return true
}

// candidate reports whether the walk reads directory path, governed by
// rule: it has depth to spare, or a rule's root lies below it.
func (w *walker) candidate(path string, rule *policy.Rule) bool {
	if rule != nil && (rule.MaxDepth < 0 || depthBelow(path, rule.Path) < rule.MaxDepth) {
		return true
	}
	return w.rootBelow(path)
}

func (w *walker) rootBelow(path string) bool {
	for _, r := range w.pol.Rules {
		if r.Path != path && fim.IsWithin(r.Path, path) {
			return true
		}
	}
	return false
}

// missingBelow classifies baseline entries below top that the walk did
// not find: Missing if the walk would have recorded them had they existed
// (the policy covers them and every directory from top down to them is
// read), OutOfScope otherwise.
func (w *walker) missingBelow(top string) classify {
	return func(e *fim.Entry) (Status, *policy.Rule, error) {
		r := w.pol.Lookup(e.Path)
		if r == nil || !w.effective(e.Path, r) {
			return OutOfScope, nil, nil
		}
		for a := parentOf(e.Path); a != "" && fim.IsWithin(a, top); a = parentOf(a) {
			if !w.candidate(a, w.pol.Lookup(a)) {
				return OutOfScope, nil, nil
			}
			if a == top {
				break
			}
		}
		return Missing, r, nil
	}
}

// takeOld drains the baseline entries before path with cls and returns the
// entry for path itself, if any.
func (w *walker) takeOld(path string, cls classify) (*fim.Entry, uint32, error) {
	if err := w.drainBefore(path, cls); err != nil {
		return nil, 0, err
	}
	e, err := w.old.peek()
	if err != nil || e == nil || e.Path != path {
		return nil, 0, err
	}
	return w.old.take()
}

// drainBefore emits the baseline entries sorting before path ("" = all).
func (w *walker) drainBefore(path string, cls classify) error {
	return w.drain(func(p string) bool { return path == "" || fim.ComparePaths(p, path) < 0 }, cls)
}

// drainWithin emits the baseline entries below path. They come right
// after path in walk order, so they are next in the baseline.
func (w *walker) drainWithin(path string, cls classify) error {
	return w.drain(func(p string) bool { return p != path && fim.IsWithin(p, path) }, cls)
}

func (w *walker) drain(while func(string) bool, cls classify) error {
	for {
		e, err := w.old.peek()
		if err != nil || e == nil || !while(e.Path) {
			return err
		}
		e, tag, err := w.old.take()
		if err != nil {
			return err
		}
		st, r, ierr := cls(e)
		if err := w.ready(Item{Path: e.Path, Status: st, Old: e, OldTag: tag, Rule: r, Err: ierr}); err != nil {
			return err
		}
	}
}

func (w *walker) ready(it Item) error {
	return w.send(&slot{item: it})
}

func (w *walker) job(parent *dirRef, name, path string, rule *policy.Rule, old *fim.Entry, tag uint32) error {
	s := &slot{item: Item{Path: path, Old: old, OldTag: tag, Rule: rule}, dir: parent, name: name, done: make(chan struct{})}
	parent.acquire()
	if err := w.send(s); err != nil {
		parent.release()
		return err
	}
	select {
	case w.jobs <- s:
		return nil
	case <-w.ctx.Done():
		parent.release()
		return w.ctx.Err()
	}
}

func (w *walker) send(s *slot) error {
	select {
	case w.queue <- s:
		return nil
	case <-w.ctx.Done():
		return w.ctx.Err()
	}
}

func joinPath(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// parentOf returns the parent of an absolute path, "" for "/".
func parentOf(path string) string {
	if path == "/" {
		return ""
	}
	return filepath.Dir(path)
}

// depthBelow counts the components of path below root.
func depthBelow(path, root string) int {
	if path == root {
		return 0
	}
	rest := strings.TrimPrefix(path[len(root):], "/")
	return strings.Count(rest, "/") + 1
}
