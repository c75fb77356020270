package baseline

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func sha256Sum(s string) [32]byte { return sha256.Sum256([]byte(s)) }

// FuzzOpen runs the whole verifying reader on arbitrary files. Nothing
// but the committed golden file can pass verification, so this mostly
// exercises the framing walk and trailer parsing; it must never panic and
// must refuse everything else with ErrTampered.
func FuzzOpen(f *testing.F) {
	_, v := testKey(f, "vigil-host1")
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "b")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := openAll(path, v)
		if err != nil && !errors.Is(err, ErrTampered) {
			t.Fatalf("error not matching ErrTampered: %v", err)
		}
	})
}

// FuzzDecode runs the decoder directly, as if verification had passed, so
// that mutated blocks and records reach it. It must never panic, loop or
// allocate beyond its limits, and must report every problem as
// ErrTampered.
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := newDecoder(bytes.NewReader(data), "fuzz")
		if err != nil {
			if !errors.Is(err, ErrTampered) {
				t.Fatalf("error not matching ErrTampered: %v", err)
			}
			return
		}
		defer d.close()
		for i := 0; ; i++ {
			_, _, err := d.next()
			if err == io.EOF {
				return
			}
			if err != nil {
				if !errors.Is(err, ErrTampered) {
					t.Fatalf("error not matching ErrTampered: %v", err)
				}
				return
			}
			if i > len(data) {
				t.Fatalf("%d entries from %d bytes", i, len(data))
			}
		}
	})
}
