package baseline

import (
	"crypto/sha256"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigilfim/vigil/internal/fim"
)

// TestTreeSize writes a baseline of real trees (with real SHA-256 digests)
// and reports its size, for comparison with other tools' databases of the
// same trees (docs/baseline-format.md).
// Run: VIGIL_MEASURE_TREE="/etc /usr/share" go test -run TestTreeSize -v ./internal/baseline
func TestTreeSize(t *testing.T) {
	roots := strings.Fields(os.Getenv("VIGIL_MEASURE_TREE"))
	if len(roots) == 0 {
		t.Skip("measurement only: set VIGIL_MEASURE_TREE to the roots to walk")
	}
	slices.SortFunc(roots, fim.ComparePaths)
	path := filepath.Join(t.TempDir(), "baseline")
	s, _ := testKey(t, "vigil-host1")
	h := testHeader()
	h.Roots = roots
	w, err := Create(path, s, h)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	start := time.Now()
	n := 0
	var walk func(p string)
	walk = func(p string) {
		e, err := lstatEntry(p)
		if err != nil {
			t.Logf("skip %s: %v", p, err)
			return
		}
		if err := w.Add(e, 0); err != nil {
			t.Fatal(err)
		}
		n++
		if e.Type != fim.TypeDir {
			return
		}
		ents, err := os.ReadDir(p)
		if err != nil {
			t.Logf("read dir %s: %v", p, err)
			return
		}
		// ReadDir sorts by name bytewise, which with the recursion gives
		// fim.ComparePaths order.
		for _, c := range ents {
			walk(filepath.Join(p, c.Name()))
		}
	}
	for _, r := range roots {
		walk(r)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d entries in %v: %d bytes, %.1f bytes/entry", n, time.Since(start).Round(time.Millisecond), fi.Size(), float64(fi.Size())/float64(n))
}

func lstatEntry(p string) (*fim.Entry, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return nil, err
	}
	st := fi.Sys().(*syscall.Stat_t)
	e := &fim.Entry{Path: p, Size: st.Size, Mode: st.Mode & 0o7777, UID: st.Uid, GID: st.Gid,
		Mtime: st.Mtim.Nano(), Ctime: st.Ctim.Nano(), Inode: st.Ino, Dev: st.Dev, Nlink: st.Nlink}
	switch fi.Mode().Type() {
	case 0:
		e.Type = fim.TypeFile
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return nil, err
		}
		e.Content = fim.Digest{Alg: fim.SHA256, Sum: h.Sum(nil)}
	case fs.ModeDir:
		e.Type = fim.TypeDir
	case fs.ModeSymlink:
		e.Type = fim.TypeSymlink
		if e.LinkTarget, err = os.Readlink(p); err != nil {
			return nil, err
		}
	case fs.ModeNamedPipe:
		e.Type = fim.TypeFIFO
	case fs.ModeSocket:
		e.Type = fim.TypeSocket
	case fs.ModeDevice | fs.ModeCharDevice:
		e.Type = fim.TypeCharDev
	default:
		e.Type = fim.TypeBlockDev
	}
	return e, nil
}
