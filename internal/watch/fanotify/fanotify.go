//go:build linux

package fanotify

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigilfim/vigil/internal/fim"
	"github.com/vigilfim/vigil/internal/watch/fsevent"
)

// mask is every event that can mean a change. DELETE_SELF and MOVE_SELF
// add nothing to the parent's DELETE and MOVED_* events.
const mask = unix.FAN_MODIFY | unix.FAN_CLOSE_WRITE | unix.FAN_CREATE | unix.FAN_DELETE |
	unix.FAN_MOVED_FROM | unix.FAN_MOVED_TO | unix.FAN_ATTRIB | unix.FAN_ONDIR

const (
	// readBuf is the read(2) buffer: an event with a name is ~60-300
	// bytes, so one read drains a few thousand events.
	readBuf = 256 << 10
	// burstRead and burstPause batch reads under bursts. A read of 16 KiB
	// (~100 events) means writers are busy; pausing 5 ms then lets the
	// queue gather and merge repeated events on one file, so the reader
	// wakes and resolves less per change, for at most 5 ms more latency
	// in a burst; single changes are read at once.
	burstRead  = 16 << 10
	burstPause = 5 * time.Millisecond
	// maxOutside bounds the cached handles of directories outside the
	// roots (resolved once so later events there are dropped cheaply).
	maxOutside = 1 << 16
)

// Backend is an open fanotify watch.
type Backend struct {
	fd      int
	file    *os.File
	roots   []string
	mounts  map[[fsidLen]byte]int // fsid → fd on that file system
	cache   map[string]string     // handle key → directory path
	outside int                   // cached entries outside the roots
	stats   struct{ read, outside, unresolved, overflows atomic.Uint64 }
}

// Open marks the file systems holding roots and caches the handles of the
// directories below them. Roots must be absolute and clean.
func Open(roots []string, opts Options) (_ *Backend, err error) {
	flags := uint(unix.FAN_CLASS_NOTIF | unix.FAN_CLOEXEC | unix.FAN_NONBLOCK |
		unix.FAN_REPORT_DFID_NAME | unix.FAN_REPORT_FID)
	if !opts.LimitedQueue {
		flags |= unix.FAN_UNLIMITED_QUEUE
	}
	// FAN_REPORT_TARGET_FID (Linux 5.17) adds the handle of the entry to
	// create/move/delete events, so new directories are cached straight
	// from the event even if they are gone by the time it is read.
	fd, err := unix.FanotifyInit(flags|unix.FAN_REPORT_TARGET_FID, unix.O_RDONLY|unix.O_LARGEFILE|unix.O_CLOEXEC)
	if errors.Is(err, unix.EINVAL) {
		fd, err = unix.FanotifyInit(flags, unix.O_RDONLY|unix.O_LARGEFILE|unix.O_CLOEXEC)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: fanotify_init: %v", ErrUnsupported, err)
	}
	b := &Backend{fd: fd, roots: roots, mounts: make(map[[fsidLen]byte]int), cache: make(map[string]string)}
	defer func() {
		if err != nil {
			b.Close()
		}
	}()
	for _, root := range roots {
		if err := b.mark(root); err != nil {
			return nil, err
		}
	}
	for _, root := range roots {
		if err := b.prefill(root, opts.Descend); err != nil {
			return nil, err
		}
	}
	b.file = os.NewFile(uintptr(fd), "fanotify") // non-blocking: the runtime poller reads it
	return b, nil
}

// mark adds a filesystem mark for root's file system unless one exists. A
// root that does not exist yet is watched through its nearest existing
// ancestor (events are filtered by path, so it is seen once created).
func (b *Backend) mark(root string) error {
	root = existingDir(root)
	// Not O_PATH: open_by_handle_at refuses an O_PATH descriptor as its
	// mount fd, and every directory outside the cache is resolved with it.
	mfd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open root %s: %w", root, err)
	}
	fsid, err := fsidOf(mfd)
	if err != nil {
		unix.Close(mfd)
		return err
	}
	if _, ok := b.mounts[fsid]; ok {
		unix.Close(mfd)
		return nil
	}
	if err := unix.FanotifyMark(b.fd, unix.FAN_MARK_ADD|unix.FAN_MARK_FILESYSTEM, mask, unix.AT_FDCWD, root); err != nil {
		unix.Close(mfd)
		return fmt.Errorf("%w: mark file system of %s: %v", ErrUnsupported, root, err)
	}
	b.mounts[fsid] = mfd
	return nil
}

// existingDir returns p if it is a directory, else its nearest existing
// ancestor directory (a root that is a file, or does not exist yet).
func existingDir(p string) string {
	for {
		if fi, err := os.Lstat(p); (err == nil && fi.IsDir()) || p == "/" || p == "." {
			return p
		}
		p = filepath.Dir(p)
	}
}

func fsidOf(fd int) ([fsidLen]byte, error) {
	var st unix.Statfs_t
	var id [fsidLen]byte
	if err := unix.Fstatfs(fd, &st); err != nil {
		return id, fmt.Errorf("statfs: %w", err)
	}
	binary.NativeEndian.PutUint32(id[0:], uint32(st.Fsid.Val[0]))
	binary.NativeEndian.PutUint32(id[4:], uint32(st.Fsid.Val[1]))
	return id, nil
}

// prefill caches the handle of every directory below root on root's file
// system, so that events in directories deleted before their events are
// read can still be named.
func (b *Backend) prefill(root string, descend func(string) bool) error {
	var rootDev uint64
	var rootFsid [fsidLen]byte
	if _, err := os.Lstat(root); errors.Is(err, fs.ErrNotExist) {
		return nil // cached from its create event when it appears
	}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root {
				return fmt.Errorf("walk %s: %w", root, err)
			}
			return nil // vanished or unreadable: resolved on demand later
		}
		if !d.IsDir() {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return nil
		}
		if p == root {
			rootDev = st.Dev
			fd, err := unix.Open(root, unix.O_PATH|unix.O_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("open root %s: %w", root, err)
			}
			rootFsid, err = fsidOf(fd)
			unix.Close(fd)
			if err != nil {
				return err
			}
		} else if st.Dev != rootDev || (descend != nil && !descend(p)) {
			return fs.SkipDir
		}
		h, _, err := unix.NameToHandleAt(unix.AT_FDCWD, p, 0)
		if err != nil {
			if p == root {
				return fmt.Errorf("%w: file handle of %s: %v", ErrUnsupported, root, err)
			}
			return nil
		}
		b.cache[handle{fsid: rootFsid, typ: h.Type(), bytes: string(h.Bytes())}.key()] = p
		return nil
	})
}

// Stats returns the backend's counters.
func (b *Backend) Stats() Stats {
	return Stats{Read: b.stats.read.Load(), Outside: b.stats.outside.Load(),
		Unresolved: b.stats.unresolved.Load(), Overflows: b.stats.overflows.Load()}
}

// Run reads events until ctx is done or reading fails, and sends one Raw
// per event inside the roots to out. A dedicated goroutine only reads, so
// the kernel queue is drained while events are resolved.
func (b *Backend) Run(ctx context.Context, out chan<- fsevent.Raw) error {
	type chunk struct {
		buf  []byte
		time time.Time
	}
	// Few chunks: each holds thousands of events, and the kernel queue is
	// the place for a backlog (it is unlimited; ours must stay bounded).
	chunks := make(chan chunk, 4)
	// Buffers circulate between reader and parser: a fresh 256 KiB buffer
	// per read would be ~500 MB/s of garbage at 2,000 single-event reads
	// per second.
	free := make(chan []byte, cap(chunks)+2)
	for range cap(free) {
		free <- make([]byte, readBuf)
	}
	readErr := make(chan error, 1)
	go func() {
		defer close(chunks)
		for {
			var buf []byte
			select {
			case buf = <-free:
			case <-ctx.Done():
				return
			}
			n, err := b.file.Read(buf[:readBuf])
			if err != nil {
				if !errors.Is(err, os.ErrClosed) && ctx.Err() == nil {
					readErr <- fmt.Errorf("read fanotify events: %w", err)
				}
				return
			}
			select {
			case chunks <- chunk{buf[:n], time.Now()}:
			case <-ctx.Done():
				return
			}
			if n >= burstRead {
				// A burst: let the kernel queue gather (and merge
				// repeated events on one file) instead of waking for
				// every few events. Single changes are read at once.
				time.Sleep(burstPause)
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-readErr:
			return err
		case c, ok := <-chunks:
			if !ok {
				select {
				case err := <-readErr:
					return err
				default:
					return nil
				}
			}
			var raws []fsevent.Raw
			err := parseEvents(c.buf, func(ev event) {
				if r, ok := b.resolve(ev, c.time); ok {
					raws = append(raws, r)
				}
			})
			free <- c.buf // parsed events hold copies, not the buffer
			if err != nil {
				// The kernel wrote it; a parse error means we cannot
				// trust anything else in this buffer: rescan everything.
				raws = append(raws, fsevent.Raw{Time: c.time, Overflow: true})
			}
			for _, r := range raws {
				select {
				case out <- r:
				case <-ctx.Done():
					return nil
				}
			}
		}
	}
}

// resolve turns an event into a Raw, keeping the handle cache current.
func (b *Backend) resolve(ev event, now time.Time) (fsevent.Raw, bool) {
	b.stats.read.Add(1)
	if ev.mask&unix.FAN_Q_OVERFLOW != 0 {
		b.stats.overflows.Add(1)
		return fsevent.Raw{Time: now, Overflow: true}, true
	}
	if !ev.dirOK {
		b.stats.unresolved.Add(1)
		return fsevent.Raw{}, false
	}
	dir, ok := b.dirPath(ev.dir)
	if !ok {
		b.stats.unresolved.Add(1)
		return fsevent.Raw{}, false
	}
	p := dir
	if ev.name != "" && ev.name != "." {
		p = filepath.Join(dir, ev.name)
	}
	r := fsevent.Raw{Time: now, Path: p, PID: int(ev.pid), Op: ops(ev.mask), Dir: ev.mask&unix.FAN_ONDIR != 0}
	if r.Dir && ev.name != "" && ev.name != "." {
		b.trackDir(ev, p)
		r.Subtree = ev.mask&(unix.FAN_MOVED_FROM|unix.FAN_MOVED_TO|unix.FAN_DELETE) != 0
	}
	if !b.inRoots(p) {
		b.stats.outside.Add(1)
		return fsevent.Raw{}, false
	}
	return r, true
}

// trackDir keeps the cache right for a directory entry event: a created or
// moved-in directory gets its handle cached, a moved one has its cached
// subtree renamed, a deleted one is forgotten.
func (b *Backend) trackDir(ev event, p string) {
	if !ev.childOK {
		if ev.mask&(unix.FAN_CREATE|unix.FAN_MOVED_TO) == 0 {
			return
		}
		// Older kernel: ask for the handle by name; fails if the
		// directory is already gone, and then its events are too.
		h, _, err := unix.NameToHandleAt(unix.AT_FDCWD, p, 0)
		if err != nil {
			return
		}
		ev.child = handle{fsid: ev.dir.fsid, typ: h.Type(), bytes: string(h.Bytes())}
	}
	k := ev.child.key()
	switch {
	case ev.mask&unix.FAN_DELETE != 0:
		b.forget(k)
	case ev.mask&(unix.FAN_CREATE|unix.FAN_MOVED_TO) != 0:
		if old, ok := b.cache[k]; ok && old != p {
			b.renameSubtree(old, p)
		}
		b.remember(k, p)
	}
}

// renameSubtree rewrites the cached paths at or below old to lie below
// new. It is linear in the cache size; directory renames are rare.
func (b *Backend) renameSubtree(old, new string) {
	moved := make(map[string]string)
	for k, p := range b.cache {
		if fim.IsWithin(p, old) {
			moved[k] = new + p[len(old):]
		}
	}
	for k, p := range moved {
		b.forget(k)
		b.remember(k, p)
	}
}

func (b *Backend) remember(k, p string) {
	if !b.relevant(p) {
		if b.outside >= maxOutside {
			b.dropOutside()
		}
		b.outside++
	}
	b.cache[k] = p
}

func (b *Backend) forget(k string) {
	if p, ok := b.cache[k]; ok {
		if !b.relevant(p) {
			b.outside--
		}
		delete(b.cache, k)
	}
}

func (b *Backend) dropOutside() {
	for k, p := range b.cache {
		if !b.relevant(p) {
			delete(b.cache, k)
		}
	}
	b.outside = 0
}

// dirPath returns the path of a directory handle, from the cache or by
// opening the handle (which fails with ESTALE once the directory is gone).
func (b *Backend) dirPath(h handle) (string, bool) {
	k := h.key()
	if p, ok := b.cache[k]; ok {
		return p, true
	}
	mfd, ok := b.mounts[h.fsid]
	if !ok {
		return "", false
	}
	fd, err := unix.OpenByHandleAt(mfd, unix.NewFileHandle(h.typ, []byte(h.bytes)), unix.O_PATH|unix.O_CLOEXEC)
	if err != nil {
		return "", false
	}
	p, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	unix.Close(fd)
	if err != nil || !filepath.IsAbs(p) {
		return "", false
	}
	p = strings.TrimSuffix(p, " (deleted)")
	b.remember(k, p)
	return p, true
}

// inRoots reports whether p is at or below a root.
func (b *Backend) inRoots(p string) bool {
	for _, r := range b.roots {
		if fim.IsWithin(p, r) {
			return true
		}
	}
	return false
}

// relevant reports whether p is in the roots or an ancestor of one (whose
// entries include a root itself).
func (b *Backend) relevant(p string) bool {
	for _, r := range b.roots {
		if fim.IsWithin(p, r) || fim.IsWithin(r, p) {
			return true
		}
	}
	return false
}

func ops(m uint64) fsevent.Op {
	var o fsevent.Op
	if m&unix.FAN_CREATE != 0 {
		o |= fsevent.Create
	}
	if m&unix.FAN_MODIFY != 0 {
		o |= fsevent.Write
	}
	if m&unix.FAN_CLOSE_WRITE != 0 {
		o |= fsevent.CloseWrite
	}
	if m&unix.FAN_DELETE != 0 {
		o |= fsevent.Remove
	}
	if m&(unix.FAN_MOVED_FROM|unix.FAN_MOVED_TO) != 0 {
		o |= fsevent.Rename
	}
	if m&unix.FAN_ATTRIB != 0 {
		o |= fsevent.Attrib
	}
	return o
}

// Close releases the fanotify descriptor (ending Run's reader) and the
// file system descriptors.
func (b *Backend) Close() error {
	var err error
	if b.file != nil {
		err = b.file.Close()
	} else if b.fd >= 0 {
		err = unix.Close(b.fd)
	}
	b.fd = -1
	for _, fd := range b.mounts {
		unix.Close(fd)
	}
	b.mounts = nil
	if err != nil {
		return fmt.Errorf("close fanotify: %w", err)
	}
	return nil
}
