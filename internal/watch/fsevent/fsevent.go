// Package fsevent defines the raw notification that watch backends
// (fanotify, inotify) hand to the watcher: a path to look at again, never a
// verdict about what changed.
package fsevent

import "time"

// Op is a bit set of what the kernel said happened. It is a hint for
// humans and for choosing between a file and a subtree rescan; it is never
// used to decide what changed (unread kernel events merge and lose order).
type Op uint32

// Op bits.
const (
	Create Op = 1 << iota
	Write
	CloseWrite
	Remove
	Rename
	Attrib
)

var opNames = []string{"create", "write", "close_write", "remove", "rename", "attrib"}

// Names returns the names of the bits set, in bit order.
func (o Op) Names() []string {
	var n []string
	for i, name := range opNames {
		if o&(1<<i) != 0 {
			n = append(n, name)
		}
	}
	return n
}

// Raw is one notification from a backend.
type Raw struct {
	// Time is when the backend read the event.
	Time time.Time
	// Path is the absolute path to look at again; empty for Overflow.
	Path string
	// PID is the process the kernel named, 0 if unknown.
	PID int
	Op  Op
	// Dir is set when the object is a directory.
	Dir bool
	// Subtree asks for Path's whole subtree to be rescanned: a directory
	// was moved or deleted, or appeared with contents no event described.
	Subtree bool
	// Overflow reports that the backend lost events (a kernel queue
	// overflowed); Path names the root affected, or is empty for all.
	Overflow bool
	// Dropped counts the events the overflow is known to have lost, 0 if
	// the kernel does not say.
	Dropped uint64
}
