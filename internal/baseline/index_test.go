package baseline

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigilfim/vigil/internal/fim"
)

func TestIndexLookupAndSubtree(t *testing.T) {
	path := filepath.Join(t.TempDir(), "baseline")
	const n = 30000 // several blocks
	if err := writeSynth(path, n, 3, 2, nil); err != nil {
		t.Fatal(err)
	}
	_, v := testKey(t, "vigil-host1")
	ix, err := OpenIndex(path, v)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	if len(ix.blocks) < 3 {
		t.Fatalf("only %d blocks; the test needs several", len(ix.blocks))
	}

	// Every entry is found, and every directory's subtree yields exactly
	// the entries a full read puts under it.
	r, err := Open(path, v)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var all []*fim.Entry
	for {
		e, _, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, e)
	}
	for i, e := range all {
		if i%97 != 0 && i != len(all)-1 {
			continue
		}
		got, _, err := ix.Lookup(e.Path)
		if err != nil || !entriesEqual(got, e) {
			t.Fatalf("Lookup(%q) = %v, %v", e.Path, got, err)
		}
		if e.Type != fim.TypeDir {
			continue
		}
		want := 0
		for _, x := range all {
			if fim.IsWithin(x.Path, e.Path) {
				want++
			}
		}
		it := ix.Subtree(e.Path)
		got2 := 0
		for {
			x, _, err := it.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if !fim.IsWithin(x.Path, e.Path) {
				t.Fatalf("Subtree(%q) yielded %q", e.Path, x.Path)
			}
			got2++
		}
		if got2 != want {
			t.Fatalf("Subtree(%q): %d entries, want %d", e.Path, got2, want)
		}
	}
	for _, p := range []string{"/", "/aaa", "/srv/t000001/zzzz-not-there", "/zzz"} {
		if _, _, err := ix.Lookup(p); !errors.Is(err, ErrNotFound) {
			t.Errorf("Lookup(%q) err = %v, want ErrNotFound", p, err)
		}
	}
}

func TestIndexRefusesChangeAfterVerification(t *testing.T) {
	path := filepath.Join(t.TempDir(), "baseline")
	if err := writeSynth(path, 5000, 3, 2, nil); err != nil {
		t.Fatal(err)
	}
	_, v := testKey(t, "vigil-host1")
	ix, err := OpenIndex(path, v)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	b := ix.blocks[len(ix.blocks)/2]
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0x55}, b.payloadOff+3); err != nil {
		t.Fatal(err)
	}
	f.Close()
	_, _, err = ix.Lookup(b.first)
	if !errors.Is(err, ErrTampered) || !strings.Contains(err.Error(), "changed after the baseline was verified") {
		t.Fatalf("Lookup after tampering: %v", err)
	}
}
