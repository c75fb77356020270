package fsys

import (
	"context"
	"crypto/sha256"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/zeebo/blake3"
	"golang.org/x/sys/unix"

	"github.com/vigilfim/vigil/internal/fim"
)

func sha(s string) fim.Digest {
	sum := sha256.Sum256([]byte(s))
	return fim.Digest{Alg: fim.SHA256, Sum: sum[:]}
}

func b3(s string) fim.Digest {
	sum := blake3.Sum256([]byte(s))
	return fim.Digest{Alg: fim.BLAKE3, Sum: sum[:]}
}

func TestHash(t *testing.T) {
	dir := t.TempDir()
	big := string(make([]byte, 3*readBufSize+17)) // spans several reads
	tests := []struct {
		name    string
		content string
		req     HashRequest
		sum     fim.Digest
		prefix  fim.Digest
	}{
		{name: "sha256", content: "hello", req: HashRequest{Alg: fim.SHA256}, sum: sha("hello")},
		{name: "blake3", content: "hello", req: HashRequest{Alg: fim.BLAKE3}, sum: b3("hello")},
		{name: "empty", content: "", req: HashRequest{Alg: fim.SHA256}, sum: sha("")},
		{name: "big", content: big, req: HashRequest{Alg: fim.BLAKE3}, sum: b3(big)},
		{name: "prefix same alg", content: "hello world", req: HashRequest{Alg: fim.SHA256, PrefixAlg: fim.SHA256, PrefixLen: 5}, sum: sha("hello world"), prefix: sha("hello")},
		{name: "prefix other alg", content: "hello world", req: HashRequest{Alg: fim.SHA256, PrefixAlg: fim.BLAKE3, PrefixLen: 5}, sum: sha("hello world"), prefix: b3("hello")},
		{name: "prefix empty", content: "hello", req: HashRequest{Alg: fim.SHA256, PrefixAlg: fim.SHA256, PrefixLen: 0}, sum: sha("hello"), prefix: sha("")},
		{name: "prefix whole", content: "hello", req: HashRequest{Alg: fim.BLAKE3, PrefixAlg: fim.SHA256, PrefixLen: 5}, sum: b3("hello"), prefix: sha("hello")},
		{name: "prefix longer than file", content: "hel", req: HashRequest{Alg: fim.SHA256, PrefixAlg: fim.SHA256, PrefixLen: 5}, sum: sha("hel")},
		{name: "prefix across reads", content: big, req: HashRequest{Alg: fim.SHA256, PrefixAlg: fim.SHA256, PrefixLen: readBufSize + 3}, sum: sha(big), prefix: sha(big[:readBufSize+3])},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, tt.name)
			writeFile(t, p, tt.content)
			e := mustLstat(t, p)
			for _, want := range []*fim.Entry{e, nil} {
				r, err := Hash(t.Context(), p, want, tt.req)
				if err != nil {
					t.Fatal(err)
				}
				if !r.Sum.Equal(tt.sum) || !r.Prefix.Equal(tt.prefix) || r.Size != int64(len(tt.content)) {
					t.Fatalf("Hash = %v %v %d; want %v %v %d", r.Sum, r.Prefix, r.Size, tt.sum, tt.prefix, len(tt.content))
				}
			}
		})
	}
	if _, err := Hash(t.Context(), filepath.Join(dir, "empty"), nil, HashRequest{Alg: fim.HashNone}); err == nil {
		t.Error("Hash with no algorithm succeeded")
	}
}

func TestHashRefuses(t *testing.T) {
	dir := t.TempDir()
	j := func(n string) string { return filepath.Join(dir, n) }
	writeFile(t, j("f"), "x")
	if err := os.Symlink("f", j("link")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(j("fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(j("dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"link", "fifo", "dir"} {
		t.Run(n, func(t *testing.T) {
			if _, err := Hash(t.Context(), j(n), nil, HashRequest{Alg: fim.SHA256}); !errors.Is(err, ErrNotRegular) {
				t.Fatalf("Hash = %v; want ErrNotRegular", err)
			}
			// Even with a forged "regular file" entry the open or the
			// fstat refuses, without blocking on the FIFO.
			want := mustLstat(t, j(n))
			want.Type = fim.TypeFile
			if _, err := Hash(t.Context(), j(n), want, HashRequest{Alg: fim.SHA256}); !errors.Is(err, ErrNotRegular) {
				t.Fatalf("Hash(forged entry) = %v; want ErrNotRegular", err)
			}
		})
	}
}

// The races below are made deterministic by changing the file between the
// caller's Lstat and Hash, or from Hash's progress callback mid-read.
func TestHashRaces(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	content := string(make([]byte, 2*readBufSize))
	setup := func(t *testing.T) *fim.Entry {
		os.Remove(p)
		writeFile(t, p, content)
		return mustLstat(t, p)
	}
	appendTo := func(t *testing.T) {
		f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString("more")
		f.Close()
	}
	t.Run("vanished", func(t *testing.T) {
		e := setup(t)
		os.Remove(p)
		if _, err := Hash(t.Context(), p, e, HashRequest{Alg: fim.SHA256}); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Hash = %v; want ErrNotExist", err)
		}
	})
	t.Run("replaced by fifo", func(t *testing.T) {
		e := setup(t)
		os.Remove(p)
		if err := unix.Mkfifo(p, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Hash(t.Context(), p, e, HashRequest{Alg: fim.SHA256}); !errors.Is(err, ErrNotRegular) {
			t.Fatalf("Hash = %v; want ErrNotRegular", err)
		}
	})
	t.Run("replaced by symlink", func(t *testing.T) {
		e := setup(t)
		os.Remove(p)
		os.Symlink("/etc/shadow", p)
		if _, err := Hash(t.Context(), p, e, HashRequest{Alg: fim.SHA256}); !errors.Is(err, ErrNotRegular) {
			t.Fatalf("Hash = %v; want ErrNotRegular", err)
		}
	})
	t.Run("replaced by other file", func(t *testing.T) {
		e := setup(t)
		other := filepath.Join(dir, "other")
		writeFile(t, other, content)
		if err := os.Rename(other, p); err != nil {
			t.Fatal(err)
		}
		if _, err := Hash(t.Context(), p, e, HashRequest{Alg: fim.SHA256}); !errors.Is(err, ErrReplaced) {
			t.Fatalf("Hash = %v; want ErrReplaced", err)
		}
	})
	t.Run("changed before open", func(t *testing.T) {
		e := setup(t)
		appendTo(t)
		if _, err := Hash(t.Context(), p, e, HashRequest{Alg: fim.SHA256}); !errors.Is(err, ErrChangedDuringRead) {
			t.Fatalf("Hash = %v; want ErrChangedDuringRead", err)
		}
	})
	t.Run("grew during read", func(t *testing.T) {
		e := setup(t)
		once := false
		req := HashRequest{Alg: fim.SHA256, Progress: func(int64) {
			if !once {
				once = true
				appendTo(t)
			}
		}}
		if _, err := Hash(t.Context(), p, e, req); !errors.Is(err, ErrChangedDuringRead) {
			t.Fatalf("Hash = %v; want ErrChangedDuringRead", err)
		}
	})
	t.Run("truncated during read", func(t *testing.T) {
		e := setup(t)
		req := HashRequest{Alg: fim.SHA256, Progress: func(int64) { os.Truncate(p, 1) }}
		if _, err := Hash(t.Context(), p, e, req); !errors.Is(err, ErrChangedDuringRead) {
			t.Fatalf("Hash = %v; want ErrChangedDuringRead", err)
		}
	})
	t.Run("growing file may grow", func(t *testing.T) {
		e := setup(t)
		appendTo(t) // after lstat
		once := false
		req := HashRequest{Alg: fim.SHA256, PrefixAlg: fim.SHA256, PrefixLen: 10, Growing: true, Progress: func(int64) {
			if !once {
				once = true
				appendTo(t)
			}
		}}
		r, err := Hash(t.Context(), p, e, req)
		if err != nil {
			t.Fatal(err)
		}
		if !r.Sum.Equal(sha(content)) || !r.Prefix.Equal(sha(content[:10])) || r.Size != e.Size {
			t.Fatalf("Hash = %+v; want the lstat'ed %d bytes", r, e.Size)
		}
	})
	t.Run("growing file truncated", func(t *testing.T) {
		e := setup(t)
		os.Truncate(p, 3)
		if _, err := Hash(t.Context(), p, e, HashRequest{Alg: fim.SHA256, Growing: true}); !errors.Is(err, ErrChangedDuringRead) {
			t.Fatalf("Hash = %v; want ErrChangedDuringRead", err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		e := setup(t)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := Hash(ctx, p, e, HashRequest{Alg: fim.SHA256}); !errors.Is(err, context.Canceled) {
			t.Fatalf("Hash = %v; want context.Canceled", err)
		}
	})
}

// A 3 GB sparse file hashes correctly in bounded memory.
func TestHashSparse(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 3 GB of holes")
	}
	p := filepath.Join(t.TempDir(), "sparse")
	const size = 3 << 30
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("tail"), size-4)
	f.Close()

	want := blake3.New()
	zeros := make([]byte, 1<<20)
	for n := int64(0); n < size-4; n += int64(len(zeros)) {
		want.Write(zeros[:min(int64(len(zeros)), size-4-n)])
	}
	want.Write([]byte("tail"))

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	r, err := Hash(t.Context(), p, mustLstat(t, p), HashRequest{Alg: fim.BLAKE3})
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if r.Size != size || string(r.Sum.Sum) != string(want.Sum(nil)) {
		t.Fatalf("Hash = %v size %d", r.Sum, r.Size)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Errorf("hashing 3 GB allocated %d bytes", alloc)
	}
}

// Data islands between holes, at and off read-buffer boundaries.
func TestHashSparseIslands(t *testing.T) {
	p := filepath.Join(t.TempDir(), "islands")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	const size = 40 << 20
	f.Truncate(size)
	for _, off := range []int64{0, 3<<20 + 5, 8 << 20, 20<<20 - 2, size - 11} {
		f.WriteAt([]byte("data island"), off)
	}
	f.Close()
	content, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	e := mustLstat(t, p)
	r, err := Hash(t.Context(), p, e, HashRequest{Alg: fim.SHA256, PrefixAlg: fim.BLAKE3, PrefixLen: 8<<20 + 3})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Sum.Equal(sha(string(content[:size]))) || !r.Prefix.Equal(b3(string(content[:8<<20+3]))) {
		t.Fatal("sparse digest differs from the digest of the bytes read")
	}
}
