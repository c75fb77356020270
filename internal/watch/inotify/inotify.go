// Package inotify is the fallback watch backend, for where fanotify is not
// permitted: one inotify watch per directory (through fsnotify), added
// recursively. inotify reports no process, and a directory's watch is
// added only after the directory appears, so each new directory is
// reported as a subtree to rescan right after its watch is in place:
// whatever was created in it before that is found by the rescan.
package inotify

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/vigilfim/vigil/internal/fim"
	"github.com/vigilfim/vigil/internal/watch/fsevent"
)

// bufferedEvents is fsnotify's channel buffer: it lets a burst be read off
// the inotify descriptor while the consumer is busy.
const bufferedEvents = 4096

// Options configure the backend.
type Options struct {
	// Descend, if set, says whether a directory gets a watch (and its
	// subdirectories); excluded subtrees cost no watches.
	Descend func(dir string) bool
}

// Backend is an open recursive inotify watch.
type Backend struct {
	w       *fsnotify.Watcher
	roots   []string
	descend func(string) bool
	watched map[string]bool
}

// Open adds watches for every directory below roots (for a root that is a
// file or does not exist yet, its nearest existing ancestor directory).
func Open(roots []string, opts Options) (_ *Backend, err error) {
	w, err := fsnotify.NewBufferedWatcher(bufferedEvents)
	if err != nil {
		return nil, fmt.Errorf("start inotify: %w", err)
	}
	b := &Backend{w: w, roots: roots, descend: opts.Descend, watched: make(map[string]bool)}
	defer func() {
		if err != nil {
			w.Close()
		}
	}()
	for _, root := range roots {
		if err := b.addTree(watchBase(root)); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// watchBase is the directory to watch for root: itself if a directory,
// else the nearest existing ancestor.
func watchBase(root string) string {
	p := root
	for {
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			return p
		}
		if p == "/" {
			return p
		}
		p = filepath.Dir(p)
	}
}

// addTree watches dir and the directories below it that are relevant.
func (b *Backend) addTree(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == dir {
				return nil // gone again already; its parent's event covers it
			}
			return nil
		}
		if !d.IsDir() {
			return nil
		}
		if p != dir && (!b.relevant(p) || (b.descend != nil && b.inRoots(p) && !b.descend(p))) {
			return fs.SkipDir
		}
		if b.watched[p] {
			return nil
		}
		if err := b.w.Add(p); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return fs.SkipDir
			}
			return fmt.Errorf("watch %s: %w", p, err)
		}
		b.watched[p] = true
		return nil
	})
}

// Run delivers events until ctx is done or inotify fails.
func (b *Backend) Run(ctx context.Context, out chan<- fsevent.Raw) error {
	send := func(r fsevent.Raw) bool {
		select {
		case out <- r:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err, ok := <-b.w.Errors:
			if !ok {
				return nil
			}
			// An overflow, or unknown trouble reading: either way
			// events may be lost, so ask for a rescan of everything.
			_ = err
			if !send(fsevent.Raw{Time: time.Now(), Overflow: true}) {
				return nil
			}
		case ev, ok := <-b.w.Events:
			if !ok {
				return nil
			}
			for _, r := range b.handle(ev) {
				if !send(r) {
					return nil
				}
			}
		}
	}
}

func (b *Backend) handle(ev fsnotify.Event) []fsevent.Raw {
	now := time.Now()
	p := ev.Name
	if !b.relevant(p) {
		return nil
	}
	r := fsevent.Raw{Time: now, Path: p, Op: ops(ev.Op)}
	switch {
	case ev.Has(fsnotify.Create):
		if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
			r.Dir, r.Subtree = true, true
			if err := b.addTree(p); err != nil {
				// Out of watches, most likely: the subtree is unwatched,
				// which is a loss to report like an overflow.
				return []fsevent.Raw{{Time: now, Path: p, Overflow: true}}
			}
		}
	case ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename):
		if b.watched[p] {
			r.Dir, r.Subtree = true, true
			b.unwatchTree(p)
		}
	}
	if !b.inRoots(p) {
		return nil // an ancestor of a root: only kept for its watch
	}
	return []fsevent.Raw{r}
}

// unwatchTree forgets the watches at or below a removed or moved directory.
// A moved directory keeps its inotify watch under the old name, so the
// watch is removed; its new location gets watches from its create event.
func (b *Backend) unwatchTree(dir string) {
	for p := range b.watched {
		if fim.IsWithin(p, dir) {
			_ = b.w.Remove(p) // fails for a deleted directory: already gone
			delete(b.watched, p)
		}
	}
}

func (b *Backend) inRoots(p string) bool {
	for _, r := range b.roots {
		if fim.IsWithin(p, r) {
			return true
		}
	}
	return false
}

// relevant: in the roots, or an ancestor of one.
func (b *Backend) relevant(p string) bool {
	for _, r := range b.roots {
		if fim.IsWithin(p, r) || fim.IsWithin(r, p) {
			return true
		}
	}
	return false
}

func ops(o fsnotify.Op) fsevent.Op {
	var r fsevent.Op
	if o.Has(fsnotify.Create) {
		r |= fsevent.Create
	}
	if o.Has(fsnotify.Write) {
		r |= fsevent.Write
	}
	if o.Has(fsnotify.Remove) {
		r |= fsevent.Remove
	}
	if o.Has(fsnotify.Rename) {
		r |= fsevent.Rename
	}
	if o.Has(fsnotify.Chmod) {
		r |= fsevent.Attrib
	}
	return r
}

// Watches returns the number of directories watched.
func (b *Backend) Watches() int { return len(b.watched) }

// Close removes all watches.
func (b *Backend) Close() error {
	if err := b.w.Close(); err != nil {
		return fmt.Errorf("close inotify: %w", err)
	}
	return nil
}
