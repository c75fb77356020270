package baseline

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/vigilfim/vigil/internal/fim"
)

var update = flag.Bool("update", false, "rewrite golden files and fuzz seeds in testdata/")

// goldenEntries are the entries of the golden baselines: every field and
// file type, small enough to read in a hex dump.
func goldenEntries() []*fim.Entry {
	var out []*fim.Entry
	for _, e := range allKinds() {
		if len(e.Path) < 100 && len(e.Xattrs) < 2 {
			out = append(out, e)
		}
	}
	return out
}

// writeGolden writes the golden baseline with the given codec and returns
// its bytes. Everything is fixed (key, times, entries) and ed25519
// signatures are deterministic, so the bytes are too.
func writeGolden(t *testing.T, codec byte) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "golden")
	s, _ := testKey(t, "vigil-host1")
	w, err := create(path, s, testHeader(), codec)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range goldenEntries() {
		if err := w.Add(e, tagOf(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestGolden pins the format. golden-v1-stored.vbl has uncompressed
// blocks, so its bytes depend on this package alone and any change to the
// encoding shows up here; golden-v1-zstd.vbl is the form writers produce
// and must keep decoding (its exact bytes may change with the zstd
// library, so only decoding is checked). Regenerate with -update only for
// a deliberate, versioned format change.
func TestGolden(t *testing.T) {
	for _, tc := range []struct {
		file  string
		codec byte
		exact bool
	}{
		{"golden-v1-stored.vbl", codecStored, true},
		{"golden-v1-zstd.vbl", codecZstd, false},
	} {
		t.Run(tc.file, func(t *testing.T) {
			golden := filepath.Join("testdata", tc.file)
			got := writeGolden(t, tc.codec)
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if tc.exact && !bytes.Equal(got, want) {
				t.Errorf("encoding changed: wrote %d bytes differing from %s (%d bytes); a format change needs a new version", len(got), golden, len(want))
			}
			// The golden file itself must decode to the golden entries.
			tmp := filepath.Join(t.TempDir(), "b")
			if err := os.WriteFile(tmp, want, 0o600); err != nil {
				t.Fatal(err)
			}
			h, es, tags := readAll(t, tmp)
			checkHeader(t, h, testHeader(), uint64(len(goldenEntries())))
			for i, e := range goldenEntries() {
				if i >= len(es) || !entriesEqual(es[i], e) || tags[i] != tagOf(i) {
					t.Fatalf("golden entry %d differs", i)
				}
			}
		})
	}
	// The public key, so that an auditor can check the golden files with
	// their own code.
	pub := filepath.Join("testdata", "golden-key.pub")
	vkey := verifierKeyOf(t, "vigil-host1")
	if *update {
		if err := os.WriteFile(pub, []byte(vkey+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if b, err := os.ReadFile(pub); err != nil || string(b) != vkey+"\n" {
		t.Errorf("%s does not hold the test key %s (err %v)", pub, vkey, err)
	}
	if *update {
		writeFuzzSeeds(t)
	}
}

func verifierKeyOf(t *testing.T, name string) string {
	seed := sha256Sum(name)
	_, vkey, err := note.GenerateKey(bytes.NewReader(seed[:]), name)
	if err != nil {
		t.Fatal(err)
	}
	return vkey
}

// writeFuzzSeeds writes the seed corpus of the fuzz targets: the golden
// files whole, truncated and with a flipped byte.
func writeFuzzSeeds(t *testing.T) {
	var seeds [][]byte
	for _, f := range []string{"golden-v1-stored.vbl", "golden-v1-zstd.vbl"} {
		b, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		flipped := bytes.Clone(b)
		flipped[len(flipped)/2] ^= 0xff
		seeds = append(seeds, b, b[:len(b)/2], flipped)
	}
	seeds = append(seeds, []byte(magic), []byte(magic+"\x00\x01\x01\xff\xff\xff\xff\x0f"))
	for _, target := range []string{"FuzzOpen", "FuzzDecode"} {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, s := range seeds {
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(s)))
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
