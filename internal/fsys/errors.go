package fsys

import "errors"

// Errors callers branch on. They are wrapped with the path and details, so
// match them with errors.Is.
var (
	// ErrNotRegular means content was requested for an entry that is not a
	// regular file, or that turned into something else between lstat and
	// open. Content is never read from FIFOs, sockets or devices.
	ErrNotRegular = errors.New("not a regular file")
	// ErrReplaced means the file opened for hashing is not the one that
	// was stat'ed (device or inode differ): it was swapped underneath.
	ErrReplaced = errors.New("file replaced between stat and open")
	// ErrChangedDuringRead means size, mtime or ctime moved while the
	// content was read, so the digest describes no consistent state.
	ErrChangedDuringRead = errors.New("file changed during read")
	// ErrUnsupported means the operation is not implemented on this
	// operating system.
	ErrUnsupported = errors.New("not supported on this operating system")
)
