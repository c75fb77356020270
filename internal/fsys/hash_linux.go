package fsys

import (
	"context"
	"fmt"
	"io/fs"

	"golang.org/x/sys/unix"

	"github.com/vigilfim/vigil/internal/fim"
)

// openFileFlags never follow a final symlink, never block (a FIFO
// swapped in after lstat would otherwise block open until a writer
// appears), and leave atime alone (see openNoatime).
const openFileFlags = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC

// fadviseMin is the size from which the kernel is told we read
// sequentially and holes are looked for; below it the extra calls cost
// more than they save.
const fadviseMin = 1 << 20

// Hash reads the regular file at the absolute path and returns its digests.
// want is the entry from an earlier Lstat: the file opened must be the same
// regular file (else ErrNotRegular or ErrReplaced) with the same size,
// mtime and ctime (else ErrChangedDuringRead), and must still have them
// after the read. want may be nil to hash whatever regular file is there;
// Hash then lstats it first.
//
// Between that lstat and the open, an attacker could swap in another kind
// of file. A symlink fails the open (O_NOFOLLOW), a FIFO opens without
// blocking (O_NONBLOCK) and a socket fails (ENXIO); both are then refused
// by the fstat check before any read. A device node can't be swapped in by
// anyone without CAP_MKNOD, and can't be hard-linked in from /dev, which is
// another file system.
func Hash(ctx context.Context, path string, want *fim.Entry, req HashRequest) (HashResult, error) {
	return hashAt(ctx, unix.AT_FDCWD, path, path, want, req)
}

// Hash is Hash for the entry name in d; path is its absolute path, for
// errors.
func (d *Dir) Hash(ctx context.Context, name, path string, want *fim.Entry, req HashRequest) (HashResult, error) {
	return hashAt(ctx, d.fd, name, path, want, req)
}

func hashAt(ctx context.Context, dirfd int, name, path string, want *fim.Entry, req HashRequest) (HashResult, error) {
	if want == nil {
		// Never open what might be a device: look before opening.
		e, err := lstatAt(dirfd, name, path, 0)
		if err != nil {
			return HashResult{}, err
		}
		want = e
	}
	if want.Type != fim.TypeFile {
		return HashResult{}, &fs.PathError{Op: "hash", Path: path, Err: ErrNotRegular}
	}
	dg, err := newDigester(req)
	if err != nil {
		return HashResult{}, err
	}
	defer dg.close()

	fd, err := openNoatime(dirfd, name, openFileFlags)
	if err != nil {
		if err == unix.ELOOP || err == unix.ENXIO {
			// ELOOP: a symlink now stands where the file was; ENXIO: a
			// socket, or a FIFO with no writer.
			err = ErrNotRegular
		}
		return HashResult{}, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)

	var before unix.Stat_t
	if err := unix.Fstat(fd, &before); err != nil {
		return HashResult{}, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	if before.Mode&unix.S_IFMT != unix.S_IFREG {
		return HashResult{}, &fs.PathError{Op: "hash", Path: path, Err: ErrNotRegular}
	}
	if before.Dev != want.Dev || before.Ino != want.Inode {
		return HashResult{}, &fs.PathError{Op: "hash", Path: path, Err: ErrReplaced}
	}
	size := before.Size
	if req.Growing {
		if before.Size < want.Size {
			return HashResult{}, changed(path, "size", want.Size, before.Size)
		}
		size = want.Size // hash what the lstat'ed entry describes
	} else if err := sameState(path, want.Size, want.Mtime, want.Ctime, &before); err != nil {
		return HashResult{}, err
	}
	if size >= fadviseMin {
		_ = unix.Fadvise(fd, 0, 0, unix.FADV_SEQUENTIAL) // a hint; failure is harmless
	}

	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	// Fewer blocks than bytes means holes (or inline or compressed data,
	// which SEEK_DATA reports as data). Small files aren't worth the two
	// extra lseek calls.
	sparse := size >= fadviseMin && before.Blocks*512 < size
	r := contentReader{fd: fd, buf: *bp, size: size, sparse: sparse}
	// Read exactly size bytes: a file that grew is caught by the second
	// fstat, one that shrank by an early EOF, and small files need no
	// extra read to see EOF.
	for r.off < size {
		if err := ctx.Err(); err != nil {
			return HashResult{}, err
		}
		chunk, err := r.next()
		if err != nil {
			return HashResult{}, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if len(chunk) == 0 {
			return HashResult{}, changed(path, "size", size, r.off)
		}
		dg.write(chunk)
		if req.Progress != nil {
			req.Progress(int64(len(chunk)))
		}
	}

	var after unix.Stat_t
	if err := unix.Fstat(fd, &after); err != nil {
		return HashResult{}, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	if req.Growing {
		if after.Size < size {
			return HashResult{}, changed(path, "size", size, after.Size)
		}
	} else if err := sameState(path, before.Size, tsNano(before.Mtim), tsNano(before.Ctim), &after); err != nil {
		return HashResult{}, err
	}
	return dg.result(), nil
}

func sameState(path string, size, mtime, ctime int64, st *unix.Stat_t) error {
	switch {
	case st.Size != size:
		return changed(path, "size", size, st.Size)
	case tsNano(st.Mtim) != mtime:
		return changed(path, "mtime", mtime, tsNano(st.Mtim))
	case tsNano(st.Ctim) != ctime:
		return changed(path, "ctime", ctime, tsNano(st.Ctim))
	}
	return nil
}

func changed(path, what string, from, to int64) error {
	return &fs.PathError{Op: "hash", Path: path, Err: fmt.Errorf("%w: %s %d -> %d", ErrChangedDuringRead, what, from, to)}
}

func tsNano(ts unix.Timespec) int64 { return ts.Sec*1e9 + ts.Nsec }

// contentReader reads a file's first size bytes in chunks. For a sparse
// file (fewer blocks allocated than its size) it finds the holes with
// SEEK_DATA and SEEK_HOLE and hands out zeros for them without reading:
// a 3 GB /var/log/lastlog of holes costs no copying.
type contentReader struct {
	fd     int
	buf    []byte
	size   int64
	sparse bool
	off    int64
	// [dataStart, dataEnd) is the data extent at or after off, when known.
	dataStart, dataEnd int64
	known              bool
	zeros              []byte
}

func (r *contentReader) next() ([]byte, error) {
	want := min(int64(len(r.buf)), r.size-r.off)
	if r.sparse {
		if !r.known || r.off >= r.dataEnd {
			r.findData()
		}
		if r.off < r.dataStart {
			if r.zeros == nil {
				r.zeros = make([]byte, len(r.buf)) // only sparse files pay for it
			}
			chunk := r.zeros[:min(want, r.dataStart-r.off)]
			r.off += int64(len(chunk))
			return chunk, nil
		}
		want = min(want, r.dataEnd-r.off)
	}
	n, err := ignoringEINTR(func() (int, error) { return unix.Pread(r.fd, r.buf[:want], r.off) })
	if err != nil {
		return nil, err
	}
	r.off += int64(n)
	return r.buf[:n], nil
}

// findData locates the next data extent. Where the file system can't say
// (EINVAL, or anything else), it falls back to treating the rest as data.
func (r *contentReader) findData() {
	r.known = true
	start, err := unix.Seek(r.fd, r.off, unix.SEEK_DATA)
	if err == unix.ENXIO { // only a hole up to the end of the file
		r.dataStart, r.dataEnd = r.size, r.size
		return
	}
	if err != nil {
		r.sparse, r.dataStart, r.dataEnd = false, r.off, r.size
		return
	}
	end, err := unix.Seek(r.fd, start, unix.SEEK_HOLE)
	if err != nil || end <= start {
		end = r.size
	}
	r.dataStart, r.dataEnd = start, end
}
