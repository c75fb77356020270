// Package scan walks the trees a policy names, reads each entry's
// attributes, hashes content where the policy asks for it, and merges the
// result with a baseline, delivering one Item per path in fim.ComparePaths
// order so that callers can stream-diff and stream-write a new baseline.
//
// # Pipeline
//
// One walker goroutine reads directories in sorted order, depth first, and
// advances through the baseline in step with the walk. For every path it
// appends a slot to an ordered queue; slots for non-directories also go to
// a pool of workers, which lstat, read xattrs and, when the fingerprint
// (size, mtime, ctime, inode, device) moved or no reusable digest exists,
// hash the content. Run's own goroutine takes slots from the queue in order,
// waits for each to be finished, and calls fn. The queue's capacity bounds
// how far the walk runs ahead of fn, so memory stays bounded however large
// the tree: hashing a big file holds up delivery but not the other workers.
// Directories are stat'ed by the walker through the descriptor it lists
// them with; files are stat'ed and opened relative to their parent's
// descriptor (fstatat, openat), which saves resolving every path again.
//
// # Errors
//
// Problems with one entry never stop a scan: the entry comes out as Failed
// with Err set (or Missing when it vanished before it could be stat'ed).
// That includes a walk root or directory that can't be read: its item is
// Failed, and the baseline entries below it come out as Failed too, with
// Old set, so a caller rewriting the baseline keeps them rather than
// reporting them removed. One unreadable root must not blind the checks of
// all the others; Stats.Failed tells the caller that the scan was partial.
// Run stops early only when ctx is cancelled, fn returns an error, or the
// baseline is out of order (ErrOldOrder) or fails to read.
package scan
