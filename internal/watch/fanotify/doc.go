// Package fanotify is the Linux fanotify watch backend: one filesystem mark
// per file system holding a root, in FID mode (FAN_REPORT_DFID_NAME |
// FAN_REPORT_FID), so whole trees are covered without per-directory
// watches. Events name directories by file handle; a handle → path cache,
// filled by a walk of the roots and kept up to date from directory
// create/move/delete events, turns them into paths. Events outside the
// roots (a filesystem mark sees the whole file system) are dropped.
package fanotify

import "errors"

// ErrUnsupported is returned by Open when fanotify cannot watch the roots
// here (no permission, old kernel, file system without file handles); the
// caller falls back to another backend.
var ErrUnsupported = errors.New("fanotify not usable")

// Options configure the backend.
type Options struct {
	// LimitedQueue omits FAN_UNLIMITED_QUEUE, leaving the kernel's default
	// queue of 16,384 events. Only for tests that force an overflow.
	LimitedQueue bool
	// Descend, if set, says whether the initial walk enters a directory;
	// excluded subtrees then only get their handles cached on demand.
	Descend func(dir string) bool
}

// Stats counts what the backend did with events.
type Stats struct {
	Read       uint64 // events read
	Outside    uint64 // dropped: outside the roots
	Unresolved uint64 // dropped: directory handle no longer resolvable
	Overflows  uint64
}
