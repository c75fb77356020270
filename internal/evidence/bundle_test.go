package evidence_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilfim/vigil/internal/evidence"
	"github.com/vigilfim/vigil/internal/store/storetest"
)

// goldenBundle exports records [2, 12) of a 20-record log signed with the
// fixed test key: deterministic to the byte.
func goldenBundle(t *testing.T) ([]byte, storetest.Keys) {
	t.Helper()
	ctx := context.Background()
	s := newStore(t)
	l := newLog(t, s)
	appendRecs(t, l, 0, 20)
	keys := fixedKeys(t)
	cpr := evidence.NewCheckpointer(s, keys.Signer, keys.Verifier, evidence.CheckpointerOptions{
		Clock: newFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))})
	if _, err := cpr.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := evidence.Export(ctx, s, &buf, evidence.ExportOptions{From: 2, To: 12, PublicKey: keys.VKey}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), keys
}

func TestBundleGolden(t *testing.T) {
	b, keys := goldenBundle(t)
	golden := filepath.Join("testdata", "bundle_v1.ndjson")
	if *update {
		if err := os.WriteFile(golden, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("testdata", "bundle_v1.vkey"), []byte(keys.VKey+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (go test -run TestBundleGolden -args -update creates it)", err)
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("bundle format changed; it is a published format: bump BundleVersion instead (or -update if intended)")
	}
	// The checked-in bundle verifies offline with nothing but its key.
	var n int
	rep, err := evidence.VerifyBundle(bytes.NewReader(want), evidence.BundleOptions{TrustedKey: keys.VKey}, func(br evidence.BundleRecord) error {
		w := storetest.Rec(int(br.Index))
		if br.Record.Kind != w.Kind || string(br.Record.Body) != string(w.Body) {
			t.Errorf("record %d: %+v", br.Index, br.Record)
		}
		n++
		return nil
	})
	if err != nil || n != 10 || rep.From != 2 || rep.To != 12 || rep.Checkpoint.Size != 20 {
		t.Fatalf("VerifyBundle: %+v, %d records, %v", rep, n, err)
	}
}

// bundleLines splits a bundle into its header and other lines, decoded.
func bundleLines(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
		var m map[string]any
		dec := json.NewDecoder(bytes.NewReader(l))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func joinLines(t *testing.T, ls []map[string]any) []byte {
	t.Helper()
	var buf bytes.Buffer
	for _, m := range ls {
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

// flipB64 flips one bit of the base64 bytes value s.
func flipB64(t *testing.T, s any, byteIndex int) string {
	t.Helper()
	var b []byte
	if err := json.Unmarshal([]byte(`"`+s.(string)+`"`), &b); err != nil {
		t.Fatal(err)
	}
	b[byteIndex] ^= 0x10
	out, _ := json.Marshal(b)
	return strings.Trim(string(out), `"`)
}

func TestVerifyBundleBroken(t *testing.T) {
	good, keys := goldenBundle(t)
	other := storetest.NewKeys(t, "vigil.example/evidence")
	// Line 0 is the header, lines 1..10 records 2..11, line 11 the trailer.
	tests := []struct {
		name   string
		edit   func(ls []map[string]any) []map[string]any
		raw    func(b []byte) []byte
		opts   evidence.BundleOptions
		reason evidence.Reason
		index  int64
	}{
		{name: "proof bit flipped", reason: evidence.ReasonBadProof, index: 5,
			edit: func(ls []map[string]any) []map[string]any {
				p := ls[4]["proof"].([]any)
				p[1] = flipB64(t, p[1], 7)
				return ls
			}},
		{name: "leaf bit flipped in body", reason: evidence.ReasonBadProof, index: 3,
			edit: func(ls []map[string]any) []map[string]any {
				ls[2]["leaf"] = flipB64(t, ls[2]["leaf"], 60)
				return ls
			}},
		{name: "leaf bit flipped in header", reason: evidence.ReasonMalformed, index: 3,
			edit: func(ls []map[string]any) []map[string]any {
				ls[2]["leaf"] = flipB64(t, ls[2]["leaf"], 0)
				return ls
			}},
		{name: "record deleted", reason: evidence.ReasonMissing, index: 6,
			edit: func(ls []map[string]any) []map[string]any { return append(ls[:5], ls[6:]...) }},
		{name: "records swapped", reason: evidence.ReasonReordered, index: 6,
			edit: func(ls []map[string]any) []map[string]any {
				ls[5], ls[6] = ls[6], ls[5]
				return ls
			}},
		{name: "index renumbered", reason: evidence.ReasonReordered, index: 6,
			edit: func(ls []map[string]any) []map[string]any {
				ls[6]["index"] = json.Number("6")
				return append(ls[:5], ls[6:]...)
			}},
		{name: "truncated", reason: evidence.ReasonBadBundle, index: 11,
			edit: func(ls []map[string]any) []map[string]any { return ls[:len(ls)-2] }},
		{name: "trailer count wrong", reason: evidence.ReasonBadBundle, index: 11,
			edit: func(ls []map[string]any) []map[string]any {
				ls[len(ls)-2] = ls[len(ls)-1]
				return ls[:len(ls)-1]
			}},
		{name: "checkpoint signature flipped", reason: evidence.ReasonBadCheckpoint, index: -1,
			edit: func(ls []map[string]any) []map[string]any {
				c := []byte(ls[0]["checkpoint"].(string))
				c[len(c)-10] ^= 1
				ls[0]["checkpoint"] = string(c)
				return ls
			}},
		{name: "untrusted key", reason: evidence.ReasonBadBundle, index: -1, opts: evidence.BundleOptions{TrustedKey: other.VKey}},
		{name: "key swapped for another", reason: evidence.ReasonBadCheckpoint, index: -1,
			edit: func(ls []map[string]any) []map[string]any {
				ls[0]["public_key"] = other.VKey
				return ls
			}},
		{name: "unknown field", reason: evidence.ReasonBadBundle, index: 4,
			edit: func(ls []map[string]any) []map[string]any {
				ls[3]["note"] = "x"
				return ls
			}},
		{name: "data after trailer", reason: evidence.ReasonBadBundle, index: -1,
			raw: func(b []byte) []byte { return append(b, "{}\n"...) }},
		{name: "empty", reason: evidence.ReasonBadBundle, index: -1,
			raw: func([]byte) []byte { return nil }},
		{name: "not JSON", reason: evidence.ReasonBadBundle, index: -1,
			raw: func([]byte) []byte { return []byte("hello\n") }},
		{name: "version 2", reason: evidence.ReasonBadBundle, index: -1,
			edit: func(ls []map[string]any) []map[string]any {
				ls[0]["version"] = json.Number("2")
				return ls
			}},
		{name: "range beyond checkpoint", reason: evidence.ReasonBadBundle, index: -1,
			edit: func(ls []map[string]any) []map[string]any {
				ls[0]["to"] = json.Number("21")
				return ls
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := good
			if tc.edit != nil {
				b = joinLines(t, tc.edit(bundleLines(t, good)))
			}
			if tc.raw != nil {
				b = tc.raw(append([]byte(nil), good...))
			}
			_, err := evidence.VerifyBundle(bytes.NewReader(b), tc.opts, nil)
			var ve *evidence.VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("VerifyBundle = %v, want a VerifyError", err)
			}
			t.Logf("verify --bundle: %v", err)
			if ve.Reason != tc.reason || ve.Index != tc.index {
				t.Fatalf("VerifyBundle = %q (reason %q index %d), want reason %q index %d", err, ve.Reason, ve.Index, tc.reason, tc.index)
			}
		})
	}
	// The unedited round trip through the test's own decoder still verifies,
	// so the cases above fail for their edit alone.
	if _, err := evidence.VerifyBundle(bytes.NewReader(joinLines(t, bundleLines(t, good))), evidence.BundleOptions{TrustedKey: keys.VKey}, nil); err != nil {
		t.Fatalf("re-encoded bundle: %v", err)
	}
}
