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

// goldenEntriesV1 are the golden entries as a version-1 baseline holds
// them: without device numbers.
func goldenEntriesV1() []*fim.Entry {
	es := goldenEntries()
	for _, e := range es {
		e.Rdev = nil
	}
	return es
}

// writeGolden writes the golden baseline in the given format version with
// the given codec and returns its bytes. Everything is fixed (key, times,
// entries) and ed25519 signatures are deterministic, so the bytes are too.
func writeGolden(t *testing.T, codec byte, version int) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "golden")
	s, _ := testKey(t, "vigil-host1")
	w, err := createVersion(path, s, testHeader(), codec, version)
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

// TestGolden pins the format. The -stored files have uncompressed blocks,
// so their bytes depend on this package alone and any change to the
// encoding shows up here; the -zstd files are the form writers produce
// and must keep decoding (their exact bytes may change with the zstd
// library, so only decoding is checked). The version-1 files were written
// by Vigil before device numbers were recorded and must keep decoding,
// with no device numbers; the test writer still produces them byte for
// byte. Regenerate with -update only for a deliberate, versioned format
// change.
func TestGolden(t *testing.T) {
	for _, tc := range []struct {
		file    string
		codec   byte
		version int
		exact   bool
		entries []*fim.Entry
	}{
		{"golden-v1-stored.vbl", codecStored, 1, true, goldenEntriesV1()},
		{"golden-v1-zstd.vbl", codecZstd, 1, false, goldenEntriesV1()},
		{"golden-v2-stored.vbl", codecStored, 2, true, goldenEntries()},
		{"golden-v2-zstd.vbl", codecZstd, 2, false, goldenEntries()},
	} {
		t.Run(tc.file, func(t *testing.T) {
			golden := filepath.Join("testdata", tc.file)
			got := writeGolden(t, tc.codec, tc.version)
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
			checkHeader(t, h, testHeader(), uint64(len(tc.entries)), tc.version)
			if len(es) != len(tc.entries) {
				t.Fatalf("%d entries, want %d", len(es), len(tc.entries))
			}
			for i, e := range tc.entries {
				if !entriesEqual(es[i], e) || tags[i] != tagOf(i) {
					t.Fatalf("golden entry %d differs: %+v, want %+v", i, es[i], e)
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
	for _, f := range []string{"golden-v1-stored.vbl", "golden-v1-zstd.vbl", "golden-v2-stored.vbl", "golden-v2-zstd.vbl"} {
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
