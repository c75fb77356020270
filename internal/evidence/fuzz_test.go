package evidence_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigilfim/vigil/internal/evidence"
)

// FuzzDecodeLeaf checks that DecodeLeaf never panics, that everything it
// accepts re-encodes to the same bytes (one record, one leaf), and that
// it rejects only with ErrMalformedLeaf. Seeds: testdata/fuzz/FuzzDecodeLeaf.
func FuzzDecodeLeaf(f *testing.F) {
	for _, r := range []evidence.Record{
		{Kind: "change", Time: time.Unix(1, 2), Host: "h", Actor: "a", Body: []byte(`{"k":[1,"x"]}`)},
		{Kind: "prune", Time: time.Unix(-5, 0), Body: []byte(`{}`)},
	} {
		leaf, err := evidence.EncodeLeaf(3, r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(leaf)
	}
	f.Fuzz(func(t *testing.T, leaf []byte) {
		idx, r, err := evidence.DecodeLeaf(leaf)
		if err != nil {
			if !errors.Is(err, evidence.ErrMalformedLeaf) {
				t.Fatalf("DecodeLeaf error %v does not wrap ErrMalformedLeaf", err)
			}
			return
		}
		again, err := evidence.EncodeLeaf(idx, r)
		if err != nil {
			t.Fatalf("decoded record does not encode: %v", err)
		}
		if !bytes.Equal(again, leaf) {
			t.Fatalf("leaf is not canonical:\n in  %x\n out %x", leaf, again)
		}
	})
}

// FuzzVerifyBundle checks that VerifyBundle never panics on any input and
// reports bundle problems as *VerifyError. Seeds: testdata/bundle_v1.ndjson
// and testdata/fuzz/FuzzVerifyBundle.
func FuzzVerifyBundle(f *testing.F) {
	good, err := os.ReadFile(filepath.Join("testdata", "bundle_v1.ndjson"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Fuzz(func(t *testing.T, b []byte) {
		var n int
		_, err := evidence.VerifyBundle(bytes.NewReader(b), evidence.BundleOptions{}, func(evidence.BundleRecord) error {
			n++
			return nil
		})
		var ve *evidence.VerifyError
		if err != nil && !errors.As(err, &ve) {
			t.Fatalf("VerifyBundle error %v is not a VerifyError", err)
		}
		if err == nil && n == 0 {
			t.Fatal("a bundle verified with no records")
		}
	})
}
