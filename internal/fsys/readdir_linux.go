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
	// Names are gathered in one arena and handed out as substrings of it:
	// one allocation per directory instead of one per name.
	var l listing
	for {
		n, err := ignoringEINTR(func() (int, error) { return unix.Getdents(d.fd, buf) })
		if err != nil {
			return nil, &fs.PathError{Op: "read directory", Path: d.path, Err: err}
		}
		if n <= 0 {
			break
		}
		l.parse(buf[:n])
	}
	return l.entries(), nil
}

// listing accumulates the records of getdents64 calls.
type listing struct {
	arena []byte
	ends  []int32 // end of each name in arena
	types []fim.FileType
}

// parse appends the entries of a getdents64 buffer: records of u64 ino,
// i64 off, u16 reclen, u8 type, then a NUL-terminated name.
func (l *listing) parse(b []byte) {
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
		l.arena = append(l.arena, name...)
		l.ends = append(l.ends, int32(len(l.arena)))
		l.types = append(l.types, direntType(rec[offType]))
	}
}

// entries returns the listing sorted bytewise by name.
func (l *listing) entries() []DirEntry {
	all := string(l.arena)
	out := make([]DirEntry, len(l.ends))
	start := int32(0)
	for i, end := range l.ends {
		out[i] = DirEntry{Name: all[start:end], Type: l.types[i]}
		start = end
	}
	slices.SortFunc(out, func(a, b DirEntry) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// parseDirents parses one getdents64 buffer (for tests and fuzzing).
func parseDirents(b []byte) []DirEntry {
	var l listing
	l.parse(b)
	return l.entries()
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
