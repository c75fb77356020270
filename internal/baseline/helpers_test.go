package baseline

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/vigilfim/vigil/internal/fim"
)

// testKey returns a deterministic signing key: ed25519 key generation reads
// exactly 32 bytes of randomness, so a fixed reader gives a fixed key.
func testKey(t testing.TB, name string) (note.Signer, note.Verifier) {
	t.Helper()
	seed := sha256.Sum256([]byte(name))
	skey, vkey, err := note.GenerateKey(bytes.NewReader(seed[:]), name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

var fixedTime = time.Date(2026, 11, 23, 12, 0, 0, 123456789, time.UTC)

func testHeader() Header {
	return Header{
		Created:    fixedTime,
		Hostname:   "host1.example",
		Generation: 3,
		Policy:     []byte("rules:\n  - path: /etc\n    attrs: all\n"),
		Roots:      []string{"/etc", "/srv"},
		Acceptances: []Acceptance{
			{ID: 0, Time: fixedTime.Add(-48 * time.Hour), Actor: Actor{UID: 0, User: "root", AUID: UnsetAUID}},
			{ID: 1, Time: fixedTime.Add(-24 * time.Hour), Actor: Actor{UID: 0, User: "root", AUID: 1000, LoginUser: "alice"},
				Note: "CHG-1234: rotate TLS certificate", Paths: []string{"/etc/ssl/cert.pem", "/etc/ssl/key.pem"}},
			{ID: 7, Time: fixedTime, Actor: Actor{UID: 1001, User: "bob", AUID: 1001, LoginUser: "bob"}, Note: "ünïcödé note\nwith newline"},
		},
	}
}

func entriesEqual(a, b *fim.Entry) bool {
	return a.Path == b.Path && a.Type == b.Type && a.Size == b.Size && a.Mode == b.Mode &&
		a.UID == b.UID && a.GID == b.GID && a.Mtime == b.Mtime && a.Ctime == b.Ctime &&
		a.Inode == b.Inode && a.Dev == b.Dev && a.Nlink == b.Nlink && a.LinkTarget == b.LinkTarget &&
		a.ACL == b.ACL && a.Content.Equal(b.Content) && a.RdevString() == b.RdevString() &&
		slices.EqualFunc(a.Xattrs, b.Xattrs, func(x, y fim.Xattr) bool { return x.Name == y.Name && bytes.Equal(x.Value, y.Value) })
}

// synth generates a realistic tree of about n entries in walk order
// without holding it in memory: directories of ~100 files with
// word-like names, ns timestamps clustered per directory, inodes
// allocated roughly in creation order, random SHA-256 digests.
type synth struct {
	rng   *rand.Rand
	n     int
	out   int
	dirs  []string // pending directory queue of the current top dir
	files []string
	dir   string
	top   int
	mtime int64
	inode uint64
}

var words = []string{"alpha", "bravo", "config", "data", "lib", "share", "cache", "index", "module", "python3",
	"system", "locale", "doc", "man", "include", "kernel", "net", "util", "test", "fixtures", "assets", "static"}
var exts = []string{".so", ".py", ".conf", ".txt", ".h", ".gz", ".json", ".html", ".mo", ".pyc", ""}

func newSynth(n int, seed uint64) *synth {
	return &synth{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), n: n,
		mtime: time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC).UnixNano(), inode: 1 << 20}
}

func (s *synth) name() string {
	w := words[s.rng.IntN(len(words))]
	switch s.rng.IntN(3) {
	case 0:
		return fmt.Sprintf("%s_%d%s", w, s.rng.IntN(1000), exts[s.rng.IntN(len(exts))])
	case 1:
		return fmt.Sprintf("%s-%s%s", w, words[s.rng.IntN(len(words))], exts[s.rng.IntN(len(exts))])
	}
	return fmt.Sprintf("%s%x%s", w, s.rng.Uint32(), exts[s.rng.IntN(len(exts))])
}

// next returns the next entry, or nil when n entries were produced.
func (s *synth) next() *fim.Entry {
	if s.out >= s.n {
		return nil
	}
	s.out++
	s.inode += 1 + uint64(s.rng.IntN(3))
	if len(s.files) == 0 {
		// Start a new directory: /srv/tNNN/<name>; its files come next.
		s.top++
		s.dir = fmt.Sprintf("/srv/t%06d/%s", s.top, s.name())
		s.mtime += int64(s.rng.IntN(86400)) * 1e9
		seen := map[string]bool{}
		for range 50 + s.rng.IntN(100) {
			seen[s.name()] = true
		}
		s.files = s.files[:0]
		for n := range seen {
			s.files = append(s.files, n)
		}
		slices.SortFunc(s.files, fim.ComparePaths)
		return &fim.Entry{Path: s.dir, Type: fim.TypeDir, Mode: 0o755, Size: 4096, Mtime: s.mtime, Ctime: s.mtime,
			Inode: s.inode, Dev: 2049, Nlink: 2}
	}
	name := s.files[0]
	s.files = s.files[1:]
	mt := s.mtime + s.rng.Int64N(1e9)
	e := &fim.Entry{Path: s.dir + "/" + name, Type: fim.TypeFile, Mode: 0o644, Size: int64(s.rng.ExpFloat64() * 20000),
		Mtime: mt, Ctime: mt, Inode: s.inode, Dev: 2049, Nlink: 1}
	if s.rng.IntN(10) == 0 {
		e.Ctime += s.rng.Int64N(1e12)
	}
	sum := make([]byte, 32)
	for i := 0; i < 32; i += 8 {
		v := s.rng.Uint64()
		for j := range 8 {
			sum[i+j] = byte(v >> (8 * j))
		}
	}
	e.Content = fim.Digest{Alg: fim.SHA256, Sum: sum}
	return e
}
