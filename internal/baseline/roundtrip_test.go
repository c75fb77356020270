package baseline

import (
	"errors"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigilfim/vigil/internal/fim"
)

// allKinds returns entries covering every field and edge the format must
// carry, in walk order.
func allKinds() []*fim.Entry {
	sha := fim.Digest{Alg: fim.SHA256, Sum: []byte(strings.Repeat("\x01", 32))}
	b3 := fim.Digest{Alg: fim.BLAKE3, Sum: []byte(strings.Repeat("\xfe", 32))}
	es := []*fim.Entry{
		{Path: "/", Type: fim.TypeDir, Mode: 0o755, Size: 4096, Mtime: 1, Ctime: 2, Inode: 2, Dev: 2049, Nlink: 20},
		{Path: "/bin", Type: fim.TypeSymlink, Mode: 0o777, Size: 7, LinkTarget: "usr/bin", Inode: 12, Dev: 2049, Nlink: 1},
		{Path: "/dev/null", Type: fim.TypeCharDev, Mode: 0o666, Inode: 5, Dev: 5, Nlink: 1, Rdev: &fim.DevNumber{Major: 1, Minor: 3}},
		{Path: "/dev/sda", Type: fim.TypeBlockDev, Mode: 0o660, GID: 6, Inode: 300, Dev: 5, Nlink: 1,
			Rdev: &fim.DevNumber{Major: math.MaxUint32, Minor: math.MaxUint32}},
		{Path: "/etc", Type: fim.TypeDir, Mode: 0o755, Inode: 1 << 40, Dev: 2049, Nlink: 90},
		{Path: "/etc/empty", Type: fim.TypeFile, Mode: 0o600, Inode: 77, Dev: 2049, Nlink: 1},
		{Path: "/etc/empty-hashed", Type: fim.TypeFile, Mode: 0o600, Inode: 78, Dev: 2049, Nlink: 1,
			Content: fim.Digest{Alg: fim.SHA256, Sum: []byte(strings.Repeat("\xe3", 32))}},
		{Path: "/etc/shadow", Type: fim.TypeFile, Mode: 0o640, UID: 0, GID: 42, Size: 1234, Mtime: 1700000000123456789,
			Ctime: 1700000000123456789, Inode: 1 << 20, Dev: 2049, Nlink: 1, Content: sha,
			ACL:    "user::rw-\nuser:alice:r--\ngroup::r--\nmask::r--\nother::---\n",
			Xattrs: []fim.Xattr{{Name: "security.ima", Value: []byte{0, 1, 2, 0xff, '\n'}}, {Name: "user.empty", Value: []byte{}}}},
		{Path: "/etc/sudo", Type: fim.TypeFile, Mode: 0o4755, UID: math.MaxUint32, GID: math.MaxUint32, Size: math.MaxInt64,
			Mtime: math.MinInt64, Ctime: math.MaxInt64, Inode: math.MaxUint64, Dev: math.MaxUint64, Nlink: math.MaxUint64, Content: b3},
		{Path: "/etc/sudo/x", Type: fim.TypeFile, Size: -1, Mtime: math.MaxInt64, Ctime: math.MinInt64, Inode: 0, Dev: 0},
		{Path: "/etc/sudo!", Type: fim.TypeFIFO, Mode: 0o644, Inode: 3, Dev: 2049, Nlink: 1},
		{Path: "/run/sock", Type: fim.TypeSocket, Mode: 0o777, Inode: 9, Dev: 25, Nlink: 1},
		{Path: "/srv/bad\xff\xfename", Type: fim.TypeFile, Mode: 0o644, Size: 1 << 40, Content: sha, Inode: 4, Dev: 2049, Nlink: 3},
		{Path: "/srv/line\nbreak", Type: fim.TypeSymlink, LinkTarget: "\x00\xff/target\nwith newline", Inode: 5, Dev: 2049, Nlink: 1},
		{Path: "/srv/" + strings.Repeat("long", 1000), Type: fim.TypeFile, Inode: 6, Dev: 2049, Nlink: 1,
			Xattrs: []fim.Xattr{{Name: "user.big", Value: []byte(strings.Repeat("\x00v", 30000))}}},
	}
	return es
}

func writeAll(t testing.TB, path string, h Header, es []*fim.Entry, tag func(int) uint32) {
	t.Helper()
	s, _ := testKey(t, "vigil-host1")
	w, err := Create(path, s, h)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range es {
		if err := w.Add(e, tag(i)); err != nil {
			w.Abort()
			t.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

func readAll(t testing.TB, path string) (Header, []*fim.Entry, []uint32) {
	t.Helper()
	_, v := testKey(t, "vigil-host1")
	r, err := Open(path, v)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var es []*fim.Entry
	var tags []uint32
	for {
		e, tag, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, e)
		tags = append(tags, tag)
	}
	return r.Header(), es, tags
}

func tagOf(i int) uint32 { return []uint32{0, 1, 7}[i%3] }

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "baseline")
	want := allKinds()
	h := testHeader()
	writeAll(t, path, h, want, tagOf)

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %04o, want 0600", fi.Mode().Perm())
	}
	gotH, got, tags := readAll(t, path)
	if len(got) != len(want) {
		t.Fatalf("read %d entries, wrote %d", len(got), len(want))
	}
	for i := range want {
		if !entriesEqual(got[i], want[i]) {
			t.Errorf("entry %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
		if tags[i] != tagOf(i) {
			t.Errorf("entry %d tag %d, want %d", i, tags[i], tagOf(i))
		}
	}
	checkHeader(t, gotH, h, uint64(len(want)), Version)
}

func checkHeader(t *testing.T, got, want Header, entries uint64, version int) {
	t.Helper()
	if got.Version != version || got.Entries != entries || !got.Created.Equal(want.Created) ||
		got.Hostname != want.Hostname || got.Generation != want.Generation || string(got.Policy) != string(want.Policy) ||
		strings.Join(got.Roots, "|") != strings.Join(want.Roots, "|") || len(got.Acceptances) != len(want.Acceptances) {
		t.Fatalf("header:\n got %+v\nwant %+v", got, want)
	}
	for i, a := range want.Acceptances {
		g := got.Acceptances[i]
		if g.ID != a.ID || !g.Time.Equal(a.Time) || g.Actor != a.Actor || g.Note != a.Note ||
			strings.Join(g.Paths, "|") != strings.Join(a.Paths, "|") {
			t.Errorf("acceptance %d:\n got %+v\nwant %+v", i, g, a)
		}
	}
}

func TestEmptyBaseline(t *testing.T) {
	path := filepath.Join(t.TempDir(), "baseline")
	writeAll(t, path, testHeader(), nil, tagOf)
	h, es, _ := readAll(t, path)
	if len(es) != 0 || h.Entries != 0 {
		t.Fatalf("got %d entries (header %d), want none", len(es), h.Entries)
	}
}

func TestManyBlocks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "baseline")
	const n = 30000
	g := newSynth(n, 1)
	var want []*fim.Entry
	for e := g.next(); e != nil; e = g.next() {
		want = append(want, e)
	}
	writeAll(t, path, testHeader(), want, func(int) uint32 { return 1 })
	_, got, _ := readAll(t, path)
	if len(got) != n {
		t.Fatalf("read %d, want %d", len(got), n)
	}
	for i := range want {
		if !entriesEqual(got[i], want[i]) {
			t.Fatalf("entry %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
}

func TestAddErrors(t *testing.T) {
	s, _ := testKey(t, "vigil-host1")
	w, err := Create(filepath.Join(t.TempDir(), "b"), s, testHeader())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	ok := &fim.Entry{Path: "/m", Type: fim.TypeFile}
	if err := w.Add(ok, 0); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		e    *fim.Entry
		tag  uint32
		want string
	}{
		{"same path", &fim.Entry{Path: "/m", Type: fim.TypeFile}, 0, "walk order"},
		{"earlier path", &fim.Entry{Path: "/a", Type: fim.TypeFile}, 0, "walk order"},
		{"separator order", &fim.Entry{Path: "/m!", Type: fim.TypeFile}, 0, ""},
		{"child after sibling", &fim.Entry{Path: "/m/x", Type: fim.TypeFile}, 0, "walk order"},
		{"unknown tag", &fim.Entry{Path: "/z1", Type: fim.TypeFile}, 5, "names no acceptance"},
		{"no type", &fim.Entry{Path: "/z2"}, 0, "invalid file type"},
		{"bad digest", &fim.Entry{Path: "/z3", Type: fim.TypeFile, Content: fim.Digest{Alg: fim.SHA256, Sum: []byte{1}}}, 0, "digest"},
		{"digest without alg", &fim.Entry{Path: "/z3", Type: fim.TypeFile, Content: fim.Digest{Sum: []byte{1}}}, 0, "without a hash"},
		{"unsorted xattrs", &fim.Entry{Path: "/z4", Type: fim.TypeFile, Xattrs: []fim.Xattr{{Name: "b"}, {Name: "a"}}}, 0, "not sorted"},
		{"empty path", &fim.Entry{Type: fim.TypeFile}, 0, "empty path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := w.Add(tt.e, tt.tag)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want containing %q", err, tt.want)
			}
		})
	}
}

func TestCreateErrors(t *testing.T) {
	s, _ := testKey(t, "vigil-host1")
	dir := t.TempDir()
	h := testHeader()
	h.Acceptances = nil
	if _, err := Create(filepath.Join(dir, "b"), s, h); err == nil || !strings.Contains(err.Error(), "acceptance 0") {
		t.Errorf("no acceptances: err = %v", err)
	}
	h = testHeader()
	h.Acceptances[2].ID = 1
	if _, err := Create(filepath.Join(dir, "b"), s, h); err == nil || !strings.Contains(err.Error(), "strictly increasing") {
		t.Errorf("duplicate IDs: err = %v", err)
	}
	if _, err := Create(filepath.Join(dir, "missing", "b"), s, testHeader()); err == nil {
		t.Errorf("missing dir: no error")
	}
}

func TestAbortLeavesOld(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "baseline")
	writeAll(t, path, testHeader(), allKinds(), tagOf)
	old, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := testKey(t, "vigil-host1")
	w, err := Create(path, s, testHeader())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Add(&fim.Entry{Path: "/x", Type: fim.TypeFile}, 0); err != nil {
		t.Fatal(err)
	}
	w.Abort()
	w.Abort()
	if err := w.Commit(); err == nil {
		t.Error("Commit after Abort succeeded")
	}
	now, err := os.ReadFile(path)
	if err != nil || string(now) != string(old) {
		t.Fatalf("baseline changed by an aborted writer (err %v)", err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("files left in dir: %v", ents)
	}
}

func TestMissing(t *testing.T) {
	_, v := testKey(t, "vigil-host1")
	_, err := Open(filepath.Join(t.TempDir(), "nope"), v)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "vigil baseline") {
		t.Fatalf("err = %v, want ErrNotExist with a hint", err)
	}
	if errors.Is(err, ErrTampered) {
		t.Fatal("missing file reported as tampered")
	}
}

func TestFind(t *testing.T) {
	path := filepath.Join(t.TempDir(), "baseline")
	es := allKinds()
	writeAll(t, path, testHeader(), es, tagOf)
	_, v := testKey(t, "vigil-host1")
	for i, want := range es {
		r, err := Open(path, v)
		if err != nil {
			t.Fatal(err)
		}
		got, tag, err := r.Find(want.Path)
		if err != nil || !entriesEqual(got, want) || tag != tagOf(i) {
			t.Errorf("Find(%q) = %+v, %d, %v", want.Path, got, tag, err)
		}
		if _, _, err := r.Next(); err != io.EOF {
			t.Errorf("Next after Find = %v, want io.EOF", err)
		}
		r.Close()
	}
	for _, p := range []string{"/a", "/etc/zzz", "/zzz", "/etc/sudo/"} {
		r, err := Open(path, v)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := r.Find(p); !errors.Is(err, ErrNotFound) {
			t.Errorf("Find(%q) err = %v, want ErrNotFound", p, err)
		}
		r.Close()
	}
}

// TestHugeEntries checks the block limits: an entry too large for any block
// is refused without spoiling the baseline, and a large entry that does not
// fit the open block starts a block of its own.
func TestHugeEntries(t *testing.T) {
	path := filepath.Join(t.TempDir(), "baseline")
	s, _ := testKey(t, "vigil-host1")
	w, err := Create(path, s, testHeader())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	// xattrs returns n values of 1 MiB and one of last bytes.
	xattrs := func(n, last int) []fim.Xattr {
		var xs []fim.Xattr
		for i := range n {
			xs = append(xs, fim.Xattr{Name: "user.x" + string(rune('a'+i)), Value: make([]byte, maxXattrValue)})
		}
		return append(xs, fim.Xattr{Name: "user.z", Value: make([]byte, last)})
	}
	want := []*fim.Entry{
		// 200 KiB: stays in the open block (under blockTarget)...
		{Path: "/a", Type: fim.TypeFile, Xattrs: xattrs(0, 200<<10)},
		// ...so this 15.9 MiB entry does not fit beside it (16 MiB
		// blocks) and must start a block of its own.
		{Path: "/b", Type: fim.TypeFile, Xattrs: xattrs(15, 900<<10)},
		{Path: "/c", Type: fim.TypeFile, Xattrs: xattrs(10, 0)},
		{Path: "/e", Type: fim.TypeFile},
	}
	for _, e := range want[:3] {
		if err := w.Add(e, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Add(&fim.Entry{Path: "/d", Type: fim.TypeFile, Xattrs: xattrs(17, 0)}, 0); err == nil || !strings.Contains(err.Error(), "over the limit") {
		t.Fatalf("17 MiB entry: err = %v", err)
	}
	if err := w.Add(want[3], 0); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	_, got, _ := readAll(t, path)
	if len(got) != len(want) {
		t.Fatalf("read %d entries, want %d", len(got), len(want))
	}
	for i := range want {
		if !entriesEqual(got[i], want[i]) {
			t.Errorf("entry %d (%s) differs", i, want[i].Path)
		}
	}
}

func TestCreateRefusesUnreadableHeader(t *testing.T) {
	s, _ := testKey(t, "vigil-host1")
	for name, mod := range map[string]func(*Header){
		"hostname":      func(h *Header) { h.Hostname = strings.Repeat("h", maxName+1) },
		"note":          func(h *Header) { h.Acceptances[1].Note = strings.Repeat("n", maxNote+1) },
		"accepted path": func(h *Header) { h.Acceptances[1].Paths = []string{strings.Repeat("p", maxName+1)} },
	} {
		h := testHeader()
		mod(&h)
		if _, err := Create(filepath.Join(t.TempDir(), "b"), s, h); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

// TestDeviceNumbers round-trips device numbers, a device whose number was
// not recorded (kept from a version-1 baseline by an accept), and refuses a
// number on anything but a device.
func TestDeviceNumbers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "b")
	es := []*fim.Entry{
		{Path: "/dev/a", Type: fim.TypeCharDev, Rdev: &fim.DevNumber{Major: 0, Minor: 0}},
		{Path: "/dev/b", Type: fim.TypeBlockDev},
		{Path: "/dev/c", Type: fim.TypeBlockDev, Rdev: &fim.DevNumber{Major: 259, Minor: 1 << 20}},
	}
	writeAll(t, path, testHeader(), es, func(int) uint32 { return 0 })
	_, got, _ := readAll(t, path)
	for i, want := range []string{"0:0", "", "259:1048576"} {
		if got[i].RdevString() != want {
			t.Errorf("%s: rdev %q, want %q", got[i].Path, got[i].RdevString(), want)
		}
	}
	s, _ := testKey(t, "vigil-host1")
	w, err := Create(filepath.Join(t.TempDir(), "c"), s, testHeader())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	err = w.Add(&fim.Entry{Path: "/f", Type: fim.TypeFile, Rdev: &fim.DevNumber{Major: 1, Minor: 1}}, 0)
	if err == nil || !strings.Contains(err.Error(), "device number on a file") {
		t.Fatalf("Add(file with rdev) = %v", err)
	}
}
