package fsys

import (
	"encoding/binary"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vigilfim/vigil/internal/fim"
)

// DirEntry is one name in a directory listing.
type DirEntry struct {
	Name string
	// Type is the type the directory reported (d_type), or TypeUnknown on
	// file systems that don't report it. It is a hint: the entry may have
	// been replaced since; Lstat is the truth.
	Type fim.FileType
}

// direntBufSize is large enough that typical directories are read in one
// getdents64 call.
const direntBufSize = 32 << 10

var direntBufs = sync.Pool{New: func() any { b := make([]byte, direntBufSize); return &b }}

// ReadDir returns the names in d, without "." and "..", sorted bytewise,
// which among siblings is fim.ComparePaths order. It reads the directory
// from its current offset, so call it once per Dir.
func (d *Dir) ReadDir() ([]DirEntry, error) {
	bp := direntBufs.Get().(*[]byte)
	defer direntBufs.Put(bp)
	buf := *bp
	var out []DirEntry
	for {
		n, err := ignoringEINTR(func() (int, error) { return unix.Getdents(d.fd, buf) })
		if err != nil {
			return nil, &fs.PathError{Op: "read directory", Path: d.path, Err: err}
		}
		if n <= 0 {
			break
		}
		out = parseDirents(buf[:n], out)
	}
	slices.SortFunc(out, func(a, b DirEntry) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// parseDirents appends the entries of a getdents64 buffer: records of
// u64 ino, i64 off, u16 reclen, u8 type, then a NUL-terminated name.
func parseDirents(b []byte, out []DirEntry) []DirEntry {
	const (
		offReclen = unsafe.Offsetof(unix.Dirent{}.Reclen)
		offType   = unsafe.Offsetof(unix.Dirent{}.Type)
		offName   = unsafe.Offsetof(unix.Dirent{}.Name)
	)
	for len(b) > int(offName) {
		reclen := int(binary.NativeEndian.Uint16(b[offReclen:]))
		if reclen <= int(offName) || reclen > len(b) {
			break // malformed; the kernel never does this
		}
		rec := b[:reclen]
		b = b[reclen:]
		name := rec[offName:]
		if i := indexNul(name); i >= 0 {
			name = name[:i]
		}
		if len(name) == 0 || string(name) == "." || string(name) == ".." {
			continue
		}
		out = append(out, DirEntry{Name: string(name), Type: direntType(rec[offType])})
	}
	return out
}

func indexNul(b []byte) int {
	for i, c := range b {
		if c == 0 {
			return i
		}
	}
	return -1
}

func direntType(t uint8) fim.FileType {
	switch t {
	case unix.DT_REG:
		return fim.TypeFile
	case unix.DT_DIR:
		return fim.TypeDir
	case unix.DT_LNK:
		return fim.TypeSymlink
	case unix.DT_FIFO:
		return fim.TypeFIFO
	case unix.DT_SOCK:
		return fim.TypeSocket
	case unix.DT_CHR:
		return fim.TypeCharDev
	case unix.DT_BLK:
		return fim.TypeBlockDev
	}
	return fim.TypeUnknown
}
