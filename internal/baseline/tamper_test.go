package baseline

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/vigilfim/vigil/internal/fim"
)

// smallBaseline writes a small but complete baseline and returns its bytes.
func smallBaseline(t *testing.T) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "baseline")
	es := allKinds()
	// Keep it small so that every byte position can be tried: drop the
	// entries with large fields.
	small := es[:0:0]
	for _, e := range es {
		if len(e.Path) < 100 && len(e.Xattrs) < 2 {
			small = append(small, e)
		}
	}
	writeAll(t, path, testHeader(), small, tagOf)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// openAll opens and reads the whole baseline, returning the first error
// (nil if everything, including the final check, succeeded).
func openAll(path string, v note.Verifier) (int, error) {
	r, err := Open(path, v)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	return drainReader(r)
}

// mustRefuse checks that data is refused with a *TamperedError (and
// returns it). The first call for a path goes through Open; it is then
// kept open and rewritten in place for the next calls, since creating and
// closing thousands of files dominated the run time on this file system.
func mustRefuse(t *testing.T, path string, data []byte, v note.Verifier, what string) *TamperedError {
	t.Helper()
	f := scratch(t, path)
	if err := f.Truncate(0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	var err error
	if r, oerr := open(f, path, v); oerr != nil {
		err = oerr
	} else {
		_, err = drainReader(r)
		r.dec.close()
	}
	var te *TamperedError
	if !errors.As(err, &te) || !errors.Is(err, ErrTampered) {
		t.Fatalf("%s: err = %v, want a *TamperedError", what, err)
	}
	if !strings.HasPrefix(err.Error(), "baseline "+path+" was tampered with or is damaged: ") {
		t.Fatalf("%s: message %q", what, err)
	}
	return te
}

var scratchFiles = map[string]*os.File{}

// scratch returns a file at path kept open until the test ends.
func scratch(t *testing.T, path string) *os.File {
	if f, ok := scratchFiles[path]; ok {
		return f
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	scratchFiles[path] = f
	t.Cleanup(func() {
		f.Close()
		delete(scratchFiles, path)
	})
	return f
}

func TestFlipEveryByte(t *testing.T) {
	orig := smallBaseline(t)
	_, v := testKey(t, "vigil-host1")
	path := filepath.Join(t.TempDir(), "flipped")
	seen := map[Problem]int{}
	for i := range orig {
		// 0xff flips every bit; 0x01 flips only the lowest, which the
		// base64 decoder would ignore in a signature's padding bits if
		// the trailer were not checked for canonical form.
		for _, mask := range []byte{0xff, 0x01} {
			b := append([]byte(nil), orig...)
			b[i] ^= mask
			te := mustRefuse(t, path, b, v, "flip byte "+strconv.Itoa(i))
			seen[te.Problem]++
			switch {
			case i < len(magic) && te.Problem != BadMagic:
				t.Errorf("flip in magic at %d: problem %v, want bad magic", i, te.Problem)
			case i >= len(magic) && i < preambleLen && te.Problem != UnsupportedVersion:
				t.Errorf("flip in version at %d: problem %v, want unsupported version", i, te.Problem)
			}
		}
	}
	t.Logf("%d bytes, problems seen: %v", len(orig), seen)
	if seen[ContentMismatch] == 0 || seen[SignatureMismatch] == 0 {
		t.Errorf("expected content and signature mismatches among %v", seen)
	}
}

func TestTruncateEveryLength(t *testing.T) {
	orig := smallBaseline(t)
	_, v := testKey(t, "vigil-host1")
	path := filepath.Join(t.TempDir(), "truncated")
	for n := range len(orig) {
		te := mustRefuse(t, path, orig[:n], v, "truncate to "+strconv.Itoa(n))
		if te.Problem != Truncated {
			t.Errorf("truncate to %d: problem %v (%s), want truncated", n, te.Problem, te.Detail)
		}
	}
}

func TestAppend(t *testing.T) {
	orig := smallBaseline(t)
	_, v := testKey(t, "vigil-host1")
	path := filepath.Join(t.TempDir(), "appended")
	for _, extra := range [][]byte{{0}, {'\n'}, []byte("garbage"), orig} {
		b := append(append([]byte(nil), orig...), extra...)
		te := mustRefuse(t, path, b, v, "append")
		if te.Problem != TrailingData {
			t.Errorf("append %d bytes: problem %v, want trailing data", len(extra), te.Problem)
		}
		if !strings.Contains(te.Detail, strconv.Itoa(len(extra))+" bytes after the signature") {
			t.Errorf("append %d bytes: detail %q", len(extra), te.Detail)
		}
	}
}

func TestOtherHostKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "baseline")
	writeAll(t, path, testHeader(), allKinds(), tagOf)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Verifying host1's baseline with host2's key.
	_, v2 := testKey(t, "vigil-host2")
	te := mustRefuse(t, path, data, v2, "other verifier")
	if te.Problem != UnknownSigner || !strings.Contains(te.Detail, "vigil-host1+") || !strings.Contains(te.Detail, "vigil-host2+") {
		t.Errorf("problem %v detail %q, want unknown signer naming both keys", te.Problem, te.Detail)
	}

	// A baseline made (or re-signed) with another key of the same name.
	s2, _ := newKeyNamed(t, "vigil-host1")
	w, err := Create(path, s2, testHeader())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Add(&fim.Entry{Path: "/x", Type: fim.TypeFile}, 0); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	forged, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, v1 := testKey(t, "vigil-host1")
	te = mustRefuse(t, path, forged, v1, "forged with same name")
	if te.Problem != UnknownSigner {
		t.Errorf("problem %v (%s), want unknown signer", te.Problem, te.Detail)
	}
}

// newKeyNamed makes a key with the given name but different key material
// from testKey's.
func newKeyNamed(t *testing.T, name string) (note.Signer, note.Verifier) {
	t.Helper()
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = byte(i * 7)
	}
	skey, vkey, err := note.GenerateKey(strings.NewReader(string(seed)), name)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return signer, verifier
}

func TestNotRegular(t *testing.T) {
	_, v := testKey(t, "vigil-host1")
	if _, err := Open(t.TempDir(), v); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: err = %v", err)
	}
}

// TestChangedWhileReading changes the file in place after Open verified it:
// the decoding pass must notice at the end instead of returning io.EOF.
func TestChangedWhileReading(t *testing.T) {
	path := filepath.Join(t.TempDir(), "baseline")
	s, v := testKey(t, "vigil-host1")
	// Stored blocks, so the entry bytes appear verbatim in the file, and
	// enough entries that the reader has not buffered the end yet.
	w, err := create(path, s, testHeader(), codecStored)
	if err != nil {
		t.Fatal(err)
	}
	g := newSynth(20000, 3)
	var last *fim.Entry
	for e := g.next(); e != nil; e = g.next() {
		if err := w.Add(e, 0); err != nil {
			t.Fatal(err)
		}
		if !e.Content.IsZero() {
			last = e
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(data, last.Content.Sum)
	if at < 0 {
		t.Fatal("digest not found in file")
	}

	for _, find := range []bool{false, true} {
		r, err := Open(path, v)
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte{data[at] ^ 0xff}, int64(at)); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if find {
			_, _, err = r.Find("/")
		} else {
			_, err = drainReader(r)
		}
		var te *TamperedError
		if !errors.As(err, &te) || te.Problem != ChangedWhileReading {
			t.Errorf("find=%v: err = %v, want changed while being read", find, err)
		}
		r.Close()
		// Put the byte back for the next round.
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func drainReader(r *Reader) (int, error) {
	n := 0
	for {
		_, _, err := r.Next()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		n++
	}
}
