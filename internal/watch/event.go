// Package watch tells the scanner which paths to look at again, as changes
// happen, and who made each change. A backend (fanotify, else inotify)
// reports paths; bursts on one path are coalesced; an attributor (package
// whodata: Linux audit plus /proc) attaches the process behind each change.
// Watchers never decide what changed: the caller re-stats, hashes and
// diffs each path it is given against the baseline (scan.Run with a
// Limit). A lost event is never silent: overflow turns into a rescan of the
// roots affected, reported with a health event. See docs/watch.md.
package watch

import (
	"time"

	"github.com/vigilfim/vigil/internal/watch/fsevent"
	"github.com/vigilfim/vigil/internal/whodata"
)

// Source says what produced an event; it is the "source" field of
// `vigil watch --json`.
type Source string

// Sources.
const (
	SourceFanotify Source = "fanotify"
	SourceInotify  Source = "inotify"
	// SourceAudit is reserved for changes known only from audit records;
	// the watcher currently reports every change through a file backend.
	SourceAudit Source = "audit"
	// SourceRescan marks a rescan the watcher requests because events
	// were lost (queue overflow, audit loss).
	SourceRescan Source = "rescan"
	// SourceStartup is for the caller: the full check at start.
	SourceStartup Source = "startup"
)

// Op is the kernel's hint of what happened; see fsevent.Op. Never use it
// to decide what changed.
type Op = fsevent.Op

// Op bits, re-exported for callers.
const (
	OpCreate     = fsevent.Create
	OpWrite      = fsevent.Write
	OpCloseWrite = fsevent.CloseWrite
	OpRemove     = fsevent.Remove
	OpRename     = fsevent.Rename
	OpAttrib     = fsevent.Attrib
)

// Event asks the caller to look at Path again, or reports on the watcher's
// health (Health != nil, Path empty).
type Event struct {
	// Time is when the last kernel event merged into this one was read;
	// First when the first one was.
	Time  time.Time
	First time.Time
	// Path is the absolute path to check again.
	Path   string
	Source Source
	// Rescan asks for Path's whole subtree to be checked, not only Path:
	// a directory moved or appeared, or events were lost.
	Rescan bool
	// Count is the number of kernel events merged into this one. A check
	// that finds no difference from the baseline after Count > 0 means the
	// path was modified and restored (or rewritten identically): the
	// caller reports that as such rather than dropping it.
	Count int
	// Ops is the union of the kernel's hints over the merged events.
	Ops Op
	// Who made the change (the last writer when several processes wrote
	// within the window; see MultipleWriters). Nil for health events and
	// for rescans caused by lost events.
	Who *whodata.Who
	// MultipleWriters is set when more than one process wrote Path within
	// the coalescing window.
	MultipleWriters bool
	// Health is set for health events.
	Health *Health
}

// HealthKind classifies health events.
type HealthKind string

// Health kinds.
const (
	HealthStarted  HealthKind = "watcher-started"
	HealthStopped  HealthKind = "watcher-stopped"
	HealthFallback HealthKind = "backend-fallback"
	// HealthAttributionDegraded: who-data is missing or partial for some
	// or all changes (audit unavailable, audit records lost).
	HealthAttributionDegraded HealthKind = "attribution-degraded"
	// HealthOverflow: the backend lost events; a rescan follows.
	HealthOverflow HealthKind = "overflow"
	// HealthRescan: the watcher asked for Roots to be rescanned.
	HealthRescan HealthKind = "rescan"
)

// Health describes a health event. Monitoring failures are events in
// their own right (PCI DSS 10.7.2): the caller records them.
type Health struct {
	Kind    HealthKind `json:"kind"`
	Backend Source     `json:"backend,omitempty"`
	Message string     `json:"message"`
	// Dropped counts events (or audit records) known to be lost.
	Dropped uint64 `json:"dropped,omitempty"`
	// Roots are the roots affected (rescan, overflow).
	Roots []string `json:"roots,omitempty"`
}

// Meta is what `vigil watch --json` adds to a change record found through
// an event: "time" (RFC 3339 with nanoseconds, UTC), "source" and "who".
type Meta struct {
	Time   string       `json:"time"`
	Source Source       `json:"source"`
	Who    *whodata.Who `json:"who"`
}

// Meta returns the record fields for e. Who is never null: a change the
// watcher cannot attribute (a rescan after lost events, or who-data turned
// off) carries an explicit "unavailable" marker with the reason.
func (e Event) Meta() Meta {
	who := e.Who
	switch {
	case who != nil:
	case e.Source == SourceRescan:
		who = whodata.Unavailable("found by a rescan after lost events")
	case e.Source == SourceStartup:
		who = whodata.Unavailable("found by the start-up check: changed while not watched")
	default:
		who = whodata.Unavailable("who-data not collected")
	}
	return Meta{Time: e.Time.UTC().Format(time.RFC3339Nano), Source: e.Source, Who: who}
}
