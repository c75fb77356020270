package fsys

import (
	"errors"
	"fmt"
	"io/fs"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vigilfim/vigil/internal/fim"
)

// Dir is an open directory. Entries inside it are stat'ed and opened
// relative to its descriptor (fstatat, openat), which skips resolving the
// whole path again for every file and pins the directory: a parent renamed
// during the scan can't redirect the calls elsewhere.
//
// A Dir may be used by several goroutines at once; Close must come last.
type Dir struct {
	fd   int
	path string
}

// OpenDir opens the directory at the absolute path without following a
// symlink in its last component.
func OpenDir(path string) (*Dir, error) {
	fd, err := openDirAt(unix.AT_FDCWD, path)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return &Dir{fd: fd, path: path}, nil
}

// OpenDir opens the subdirectory name of d, without following a symlink.
// path is the subdirectory's absolute path, kept for error messages and
// for the calls that have no *at form.
func (d *Dir) OpenDir(name, path string) (*Dir, error) {
	fd, err := openDirAt(d.fd, name)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return &Dir{fd: fd, path: path}, nil
}

func openDirAt(dirfd int, name string) (int, error) {
	const flags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	return openNoatime(dirfd, name, flags)
}

// openNoatime opens with O_NOATIME so that a scan leaves access times as it
// found them, and retries without it when the caller owns neither the file
// nor CAP_FOWNER (EPERM).
func openNoatime(dirfd int, name string, flags int) (int, error) {
	fd, err := ignoringEINTR(func() (int, error) { return unix.Openat(dirfd, name, flags|unix.O_NOATIME, 0) })
	if err == unix.EPERM {
		fd, err = ignoringEINTR(func() (int, error) { return unix.Openat(dirfd, name, flags, 0) })
	}
	return fd, err
}

// Path returns the directory's absolute path.
func (d *Dir) Path() string { return d.path }

// Close closes the directory.
func (d *Dir) Close() error {
	if err := unix.Close(d.fd); err != nil {
		return &fs.PathError{Op: "close", Path: d.path, Err: err}
	}
	return nil
}

// Stat returns the attributes of the directory itself, read through its
// descriptor. what selects the optional attributes: xattrs and ACL are
// read only when it has fim.AttrXattrs or fim.AttrACL.
func (d *Dir) Stat(what fim.AttrSet) (*fim.Entry, error) {
	var st unix.Stat_t
	if err := unix.Fstat(d.fd, &st); err != nil {
		return nil, &fs.PathError{Op: "stat", Path: d.path, Err: err}
	}
	e := entryFromStat(d.path, &st)
	if wantXattrs(what) {
		x := xattrReader{fd: d.fd}
		if err := x.read(e, what); err != nil {
			return e, &fs.PathError{Op: "read xattrs of", Path: d.path, Err: err}
		}
	}
	return e, nil
}

// Lstat returns the attributes of the entry name in d without following a
// symlink. path is the entry's absolute path: it is recorded in the Entry
// and used for the xattr calls, which have no *at form. what selects the
// optional attributes (see Dir.Stat). On an xattr error the entry is
// returned along with the error.
func (d *Dir) Lstat(name, path string, what fim.AttrSet) (*fim.Entry, error) {
	return lstatAt(d.fd, name, path, what)
}

// Lstat returns all attributes of the entry at the absolute path, without
// following a symlink, except its content digest (see Hash).
func Lstat(path string) (*fim.Entry, error) {
	return lstatAt(unix.AT_FDCWD, path, path, fim.AllAttrs)
}

// LstatAttrs is Lstat reading only the optional attributes in what (see
// Dir.Stat).
func LstatAttrs(path string, what fim.AttrSet) (*fim.Entry, error) {
	return lstatAt(unix.AT_FDCWD, path, path, what)
}

func lstatAt(dirfd int, name, path string, what fim.AttrSet) (*fim.Entry, error) {
	var st unix.Stat_t
	err := ignoringEINTR0(func() error { return unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) })
	if err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: path, Err: err}
	}
	e := entryFromStat(path, &st)
	if e.Type == fim.TypeSymlink {
		target, err := readlinkAt(dirfd, name, st.Size)
		if err != nil {
			return e, &fs.PathError{Op: "readlink", Path: path, Err: err}
		}
		e.LinkTarget = target
	}
	if wantXattrs(what) {
		x := xattrReader{fd: -1, dirfd: dirfd, name: name, path: path}
		if err := x.read(e, what); err != nil {
			return e, &fs.PathError{Op: "read xattrs of", Path: path, Err: err}
		}
	}
	return e, nil
}

func wantXattrs(what fim.AttrSet) bool {
	return what.Has(fim.AttrXattrs) || what.Has(fim.AttrACL)
}

func entryFromStat(path string, st *unix.Stat_t) *fim.Entry {
	e := &fim.Entry{
		Path:  path,
		Type:  fileType(st.Mode),
		Size:  st.Size,
		Mode:  st.Mode & 0o7777,
		UID:   st.Uid,
		GID:   st.Gid,
		Mtime: tsNano(st.Mtim),
		Ctime: tsNano(st.Ctim),
		Inode: st.Ino,
		Dev:   st.Dev,
		Nlink: uint64(st.Nlink),
	}
	if e.Type.IsDevice() {
		e.Rdev = &fim.DevNumber{Major: unix.Major(uint64(st.Rdev)), Minor: unix.Minor(uint64(st.Rdev))}
	}
	return e
}

func fileType(mode uint32) fim.FileType {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return fim.TypeFile
	case unix.S_IFDIR:
		return fim.TypeDir
	case unix.S_IFLNK:
		return fim.TypeSymlink
	case unix.S_IFIFO:
		return fim.TypeFIFO
	case unix.S_IFSOCK:
		return fim.TypeSocket
	case unix.S_IFCHR:
		return fim.TypeCharDev
	case unix.S_IFBLK:
		return fim.TypeBlockDev
	}
	return fim.TypeUnknown
}

// readlinkAt reads a symlink's target. st_size is the target's length on
// most file systems but 0 on some (procfs), so grow the buffer until the
// target fits.
func readlinkAt(dirfd int, name string, size int64) (string, error) {
	n := max(int(size)+1, 128)
	for {
		buf := make([]byte, n)
		got, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if got < len(buf) {
			return string(buf[:got]), nil
		}
		if n >= 1<<16 {
			return "", fmt.Errorf("link target longer than %d bytes", n)
		}
		n *= 4
	}
}

// xattrReader reads extended attributes through an open descriptor (fd >=
// 0) or, without following symlinks, as name relative to dirfd. The *at
// calls (Linux 6.13) work for paths longer than PATH_MAX and skip a path
// resolution; older kernels fall back to the l*xattr calls on the path.
type xattrReader struct {
	fd         int
	dirfd      int
	name, path string
}

// xattrAtMissing is set once the kernel has said it lacks the *xattrat
// calls, to skip trying them for every file.
var xattrAtMissing atomic.Bool

func (x xattrReader) list(buf []byte) (int, error) {
	if x.fd >= 0 {
		return unix.Flistxattr(x.fd, buf)
	}
	if !xattrAtMissing.Load() {
		n, err := listxattrat(x.dirfd, x.name, buf)
		if err != unix.ENOSYS {
			return n, err
		}
		xattrAtMissing.Store(true)
	}
	return unix.Llistxattr(x.path, buf)
}

func (x xattrReader) get(name string, buf []byte) (int, error) {
	if x.fd >= 0 {
		return unix.Fgetxattr(x.fd, name, buf)
	}
	if !xattrAtMissing.Load() {
		n, err := getxattrat(x.dirfd, x.name, name, buf)
		if err != unix.ENOSYS {
			return n, err
		}
		xattrAtMissing.Store(true)
	}
	return unix.Lgetxattr(x.path, name, buf)
}

// listxattrat(2): int dfd, const char *path, unsigned int at_flags,
// char *list, size_t size.
func listxattrat(dirfd int, name string, buf []byte) (int, error) {
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		return 0, err
	}
	var bp unsafe.Pointer
	if len(buf) > 0 {
		bp = unsafe.Pointer(&buf[0])
	}
	n, _, errno := unix.Syscall6(unix.SYS_LISTXATTRAT, uintptr(dirfd), uintptr(unsafe.Pointer(p)),
		unix.AT_SYMLINK_NOFOLLOW, uintptr(bp), uintptr(len(buf)), 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// xattrArgs is struct xattr_args from include/uapi/linux/xattr.h.
type xattrArgs struct {
	value uint64
	size  uint32
	flags uint32
}

// getxattrat(2): int dfd, const char *path, unsigned int at_flags,
// const char *name, struct xattr_args *args, size_t args_size.
func getxattrat(dirfd int, name, attr string, buf []byte) (int, error) {
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		return 0, err
	}
	a, err := unix.BytePtrFromString(attr)
	if err != nil {
		return 0, err
	}
	args := xattrArgs{size: uint32(len(buf))}
	if len(buf) > 0 {
		args.value = uint64(uintptr(unsafe.Pointer(&buf[0])))
	}
	n, _, errno := unix.Syscall6(unix.SYS_GETXATTRAT, uintptr(dirfd), uintptr(unsafe.Pointer(p)),
		unix.AT_SYMLINK_NOFOLLOW, uintptr(unsafe.Pointer(a)), uintptr(unsafe.Pointer(&args)), unsafe.Sizeof(args))
	runtime.KeepAlive(buf)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// noXattrs reports errors that mean "this entry has no such xattr" rather
// than a failure: the file system has no xattr support (symlinks on many),
// or the attribute vanished between list and get.
func noXattrs(err error) bool {
	return err == unix.ENOTSUP || err == unix.ENODATA
}

// read fills e.Xattrs and e.ACL. The common case, no xattrs at all, costs
// one list call on a stack buffer.
func (x xattrReader) read(e *fim.Entry, what fim.AttrSet) error {
	var small [256]byte
	names, err := x.listAll(small[:])
	if err != nil || len(names) == 0 {
		if noXattrs(err) {
			err = nil
		}
		return err
	}
	var access, def []byte
	for len(names) > 0 {
		var name string
		name, names = cutNul(names)
		if name == "" {
			continue
		}
		isACL := name == XattrACLAccess || name == XattrACLDefault
		if isACL && !what.Has(fim.AttrACL) || !isACL && !what.Has(fim.AttrXattrs) {
			continue
		}
		v, err := x.value(name)
		if noXattrs(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("get %s: %w", name, err)
		}
		switch name {
		case XattrACLAccess:
			access = v
		case XattrACLDefault:
			def = v
		default:
			e.Xattrs = append(e.Xattrs, fim.Xattr{Name: name, Value: v})
		}
	}
	slices.SortFunc(e.Xattrs, func(a, b fim.Xattr) int { return strings.Compare(a.Name, b.Name) })
	if access != nil || def != nil {
		acl, err := DecodeACL(access, def)
		if err != nil {
			return err
		}
		e.ACL = acl
	}
	return nil
}

// The xattr calls fail with ERANGE when the buffer is too small; then ask
// for the size and retry with a buffer that large. The list or value may
// grow in between, hence the loops.
const xattrRetries = 8

func (x xattrReader) listAll(buf []byte) ([]byte, error) {
	for range xattrRetries {
		n, err := x.list(buf)
		if err == nil {
			return buf[:n], nil
		}
		if err != unix.ERANGE {
			return nil, err
		}
		size, err := x.list(nil)
		if err != nil {
			return nil, err
		}
		buf = make([]byte, size+64)
	}
	return nil, errors.New("list xattrs: list keeps growing")
}

// value returns a fresh copy of the named attribute's value.
func (x xattrReader) value(name string) ([]byte, error) {
	var small [256]byte
	buf := small[:]
	for range xattrRetries {
		n, err := x.get(name, buf)
		if err == nil {
			return slices.Clone(buf[:n]), nil
		}
		if err != unix.ERANGE {
			return nil, err
		}
		size, err := x.get(name, nil)
		if err != nil {
			return nil, err
		}
		buf = make([]byte, size+64)
	}
	return nil, errors.New("value keeps growing")
}

func cutNul(b []byte) (string, []byte) {
	for i, c := range b {
		if c == 0 {
			return string(b[:i]), b[i+1:]
		}
	}
	return string(b), nil
}

// ignoringEINTR retries f while it fails with EINTR, which Go's signal-based
// preemption makes likely for slow calls made through x/sys/unix.
func ignoringEINTR(f func() (int, error)) (int, error) {
	for {
		n, err := f()
		if err != unix.EINTR {
			return n, err
		}
	}
}

func ignoringEINTR0(f func() error) error {
	for {
		if err := f(); err != unix.EINTR {
			return err
		}
	}
}
