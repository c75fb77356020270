package evidence_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilfim/vigil/internal/evidence"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// leafVector is one entry of testdata/leaf_vectors.json: an auditor's
// reference for the leaf encoding and hash.
type leafVector struct {
	Name     string `json:"name"`
	Index    uint64 `json:"index"`
	Kind     string `json:"kind"`
	TimeNS   int64  `json:"time_ns"`
	Host     string `json:"host"`
	Actor    string `json:"actor"`
	Body     string `json:"body"` // as a string: the exact bytes in the leaf
	LeafHex  string `json:"leaf_hex"`
	LeafHash string `json:"leaf_hash_hex"`
}

func vectorRecords() []leafVector {
	return []leafVector{
		{Name: "change", Index: 0, Kind: "change", TimeNS: time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC).UnixNano(),
			Host: "web-01", Actor: "uid=0 auid=1000 exe=/usr/bin/vim",
			Body: `{"path":"/etc/passwd","attrs":["sha256","mtime"],"verdict":"unauthorized"}`},
		{Name: "empty host and actor", Index: 1, Kind: "policy_load", TimeNS: 1, Body: `{}`},
		{Name: "utf8 and escapes", Index: 1 << 40, Kind: "user_action", TimeNS: -1, Host: "hôte",
			Actor: "José", Body: `{"note":"line\nbreak \"quoted\" ü"}`},
	}
}

func TestLeafVectors(t *testing.T) {
	golden := filepath.Join("testdata", "leaf_vectors.json")
	vs := vectorRecords()
	for i := range vs {
		v := &vs[i]
		r := evidence.Record{Kind: v.Kind, Time: time.Unix(0, v.TimeNS), Host: v.Host, Actor: v.Actor, Body: []byte(v.Body)}
		leaf, err := evidence.EncodeLeaf(v.Index, r)
		if err != nil {
			t.Fatalf("%s: %v", v.Name, err)
		}
		v.LeafHex, v.LeafHash = hex.EncodeToString(leaf), hex.EncodeToString(evidence.LeafHash(leaf))
		idx, got, err := evidence.DecodeLeaf(leaf)
		if err != nil {
			t.Fatalf("%s: decode: %v", v.Name, err)
		}
		if idx != v.Index || got.Kind != r.Kind || !got.Time.Equal(r.Time) || got.Host != r.Host || got.Actor != r.Actor || !bytes.Equal(got.Body, r.Body) {
			t.Fatalf("%s: round trip gave %d %+v", v.Name, idx, got)
		}
	}
	out, err := json.MarshalIndent(vs, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, '\n')
	if *update {
		if err := os.WriteFile(golden, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create)", err)
	}
	if !bytes.Equal(out, want) {
		t.Fatalf("leaf encoding changed; it is a stored format: bump LeafVersion instead (or -update if intended)\n got: %s", out)
	}
}

func TestEncodeLeafSpecExample(t *testing.T) {
	// The worked example in docs/evidence.md.
	r := evidence.Record{Kind: "health", Time: time.Unix(0, 1), Host: "h", Actor: "a", Body: []byte(`{}`)}
	leaf, err := evidence.EncodeLeaf(2, r)
	if err != nil {
		t.Fatal(err)
	}
	want := "01" + "0000000000000002" + "0000000000000001" +
		"00000006" + hex.EncodeToString([]byte("health")) +
		"00000001" + "68" + "00000001" + "61" + "00000002" + "7b7d"
	if got := hex.EncodeToString(leaf); got != want {
		t.Fatalf("leaf\n got %s\nwant %s", got, want)
	}
}

func TestRecordCanonicalBody(t *testing.T) {
	r := evidence.Record{Kind: "change", Time: time.Unix(5, 0), Body: []byte("{ \"a\" : [1, 2],\n \"b\":\"x y\" }")}
	leaf, err := evidence.EncodeLeaf(0, r)
	if err != nil {
		t.Fatal(err)
	}
	_, got, err := evidence.DecodeLeaf(leaf)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Body) != `{"a":[1,2],"b":"x y"}` {
		t.Fatalf("body not compacted: %s", got.Body)
	}
	nr, err := evidence.NewRecord("review", time.Unix(5, 0), "h", "alice", map[string]any{"z": 1, "a": "b"})
	if err != nil {
		t.Fatal(err)
	}
	if string(nr.Body) != `{"a":"b","z":1}` {
		t.Fatalf("NewRecord body %s", nr.Body)
	}
}

func TestRecordValidate(t *testing.T) {
	ok := evidence.Record{Kind: "change", Time: time.Unix(1, 0), Body: []byte(`{}`)}
	tests := []struct {
		name string
		edit func(*evidence.Record)
	}{
		{"empty kind", func(r *evidence.Record) { r.Kind = "" }},
		{"upper-case kind", func(r *evidence.Record) { r.Kind = "Change" }},
		{"kind starting with digit", func(r *evidence.Record) { r.Kind = "1x" }},
		{"long kind", func(r *evidence.Record) { r.Kind = strings.Repeat("a", evidence.MaxKindLen+1) }},
		{"zero time", func(r *evidence.Record) { r.Time = time.Time{} }},
		{"time beyond 2262", func(r *evidence.Record) { r.Time = time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC) }},
		{"bad utf8 host", func(r *evidence.Record) { r.Host = "\xff" }},
		{"long actor", func(r *evidence.Record) { r.Actor = strings.Repeat("a", evidence.MaxActorLen+1) }},
		{"empty body", func(r *evidence.Record) { r.Body = nil }},
		{"invalid JSON", func(r *evidence.Record) { r.Body = []byte(`{"a":`) }},
		{"array body", func(r *evidence.Record) { r.Body = []byte(`[1]`) }},
		{"huge body", func(r *evidence.Record) {
			r.Body = []byte(`{"a":"` + strings.Repeat("x", evidence.MaxBodyLen) + `"}`)
		}},
	}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid record: %v", err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := ok
			tc.edit(&r)
			if err := r.Validate(); !errors.Is(err, evidence.ErrInvalidRecord) {
				t.Fatalf("Validate = %v, want ErrInvalidRecord", err)
			}
			if _, err := evidence.EncodeLeaf(0, r); !errors.Is(err, evidence.ErrInvalidRecord) {
				t.Fatalf("EncodeLeaf = %v, want ErrInvalidRecord", err)
			}
		})
	}
}

func TestDecodeLeafRejects(t *testing.T) {
	good, err := evidence.EncodeLeaf(7, evidence.Record{Kind: "change", Time: time.Unix(1, 0), Host: "h", Actor: "a", Body: []byte(`{"k":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	mod := func(f func([]byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	// Offsets: 0 version, 1..8 index, 9..16 time, 17..20 kind length.
	tests := []struct {
		name string
		leaf []byte
		want string
	}{
		{"empty", nil, "shorter than the fixed header"},
		{"version 2", mod(func(b []byte) []byte { b[0] = 2; return b }), "version 2"},
		{"truncated", good[:len(good)-1], "exceeds the"},
		{"trailing byte", append(append([]byte(nil), good...), 0), "trailing bytes"},
		{"kind length huge", mod(func(b []byte) []byte { b[17] = 0xff; return b }), "kind length"},
		{"kind upper case", mod(func(b []byte) []byte { b[21] = 'C'; return b }), "kind"},
		{"body not compact", mustLeaf(t, []byte(`{"k":1}`), func(b []byte) []byte {
			return append(b[:len(b)-4-7], append([]byte{0, 0, 0, 8}, []byte(`{"k": 1}`)...)...)
		}), "not compact"},
		{"body invalid JSON", mod(func(b []byte) []byte { b[len(b)-1] = 'x'; return b }), "not valid JSON"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := evidence.DecodeLeaf(tc.leaf)
			if !errors.Is(err, evidence.ErrMalformedLeaf) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("DecodeLeaf = %v, want ErrMalformedLeaf mentioning %q", err, tc.want)
			}
		})
	}
}

func mustLeaf(t *testing.T, body []byte, f func([]byte) []byte) []byte {
	t.Helper()
	leaf, err := evidence.EncodeLeaf(7, evidence.Record{Kind: "change", Time: time.Unix(1, 0), Host: "h", Actor: "a", Body: body})
	if err != nil {
		t.Fatal(err)
	}
	return f(leaf)
}
