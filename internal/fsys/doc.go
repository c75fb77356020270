// Package fsys is Vigil's boundary with the operating system: it reads the
// attributes of one file system entry without following symlinks, decodes
// POSIX ACLs and file capabilities, lists directories in walk order, and
// hashes file content safely.
//
// Safety comes first because a file integrity monitor runs as root over
// trees that attackers may write to. Nothing here follows a symlink, opens
// a FIFO, socket or device (opening a tape device can rewind it; opening a
// FIFO can block forever), or trusts that the file it opened is the file it
// stat'ed: content is read through a descriptor opened with O_NOFOLLOW,
// checked with fstat against the earlier lstat, and checked again after the
// read so that a file rewritten underneath yields ErrChangedDuringRead
// instead of a digest of nothing in particular.
//
// The decoders (DecodeACL, CapabilityText) are pure and portable. The file
// system calls are implemented for Linux only; on other systems they return
// ErrUnsupported.
package fsys
