package manifest

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

var created = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)

func example() *Manifest {
	return &Manifest{
		Pipeline: "deploy-app", Run: "412", Commit: "9fceb02d0ae598e95dc970b74767f19372d61af8",
		Author: "erin", Reviewers: []string{"bob"}, Hosts: []string{"app-*"}, Created: created,
		Files: []File{
			{Path: "/srv/app/bin/app", SHA256: sha256.Sum256([]byte("app v2"))},
			{Path: "/srv/app/bin/app-helper", SHA256: sha256.Sum256([]byte("helper"))},
			{Path: "/srv/app/static/caf\xe9.html", SHA256: sha256.Sum256([]byte("latin-1 name"))},
		},
	}
}

type pipelineKey struct {
	signer note.Signer
	vkey   string
}

func newKey(t testing.TB, name string) pipelineKey {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return pipelineKey{s, vkey}
}

func keyring(t testing.TB, keys ...pipelineKey) *Keyring {
	t.Helper()
	var ps []Pipeline
	for _, k := range keys {
		ps = append(ps, Pipeline{ID: k.signer.Name(), Key: k.vkey, Hosts: []string{"app-*"}, Paths: []string{"/srv/app/**"}})
	}
	kr, err := NewKeyring(ps)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func TestGolden(t *testing.T) {
	got, err := Encode(example())
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "example.manifest")
	if os.Getenv("UPDATE_GOLDEN") != "" {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("encoding changed:\n%s\nwant\n%s", got, want)
	}
	m, err := Decode(want)
	if err != nil {
		t.Fatal(err)
	}
	if f, ok := m.Lookup("/srv/app/static/caf\xe9.html"); !ok || f.SHA256 != sha256.Sum256([]byte("latin-1 name")) {
		t.Fatalf("lookup of a non-UTF-8 name: %+v %v", f, ok)
	}
}

func TestSignOpen(t *testing.T) {
	app := newKey(t, "deploy-app")
	web := newKey(t, "deploy-web")
	kr := keyring(t, app, web)
	signed, err := Sign(example(), app.signer)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("valid", func(t *testing.T) {
		v, err := kr.Open(signed)
		if err != nil {
			t.Fatal(err)
		}
		if v.Pipeline.ID != "deploy-app" || v.Manifest.Run != "412" || !bytes.Equal(v.Signed, signed) {
			t.Fatalf("verified: %+v", v)
		}
		if f, ok := v.Covers("app-1", "/srv/app/bin/app"); !ok || f.SHA256 != sha256.Sum256([]byte("app v2")) {
			t.Fatal("does not cover its own file")
		}
		for _, c := range [][2]string{{"db-1", "/srv/app/bin/app"}, {"app-1", "/srv/app/bin/other"}} {
			if _, ok := v.Covers(c[0], c[1]); ok {
				t.Errorf("covers %s on %s", c[1], c[0])
			}
		}
	})

	t.Run("tampered text", func(t *testing.T) {
		bad := bytes.Replace(signed, []byte(`"run":"412"`), []byte(`"run":"413"`), 1)
		if _, err := kr.Open(bad); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("err = %v, want ErrBadSignature", err)
		}
	})

	t.Run("tampered hash", func(t *testing.T) {
		m := example()
		i := bytes.Index(signed, []byte(`"sha256":"`)) + len(`"sha256":"`)
		bad := bytes.Clone(signed)
		bad[i] ^= 1 // '0'..'9' and 'a'..'f' stay hex under xor 1
		if bytes.Equal(bad, signed) || m == nil {
			t.Fatal("no change")
		}
		if _, err := kr.Open(bad); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("err = %v, want ErrBadSignature", err)
		}
	})

	t.Run("unknown key", func(t *testing.T) {
		stranger := newKey(t, "deploy-app") // same name, other key
		s, err := Sign(example(), stranger.signer)
		if err != nil {
			t.Fatal(err)
		}
		_, err = kr.Open(s)
		var u *UnknownSignerError
		if !errors.As(err, &u) || u.Manifest == nil || u.Manifest.Run != "412" || len(u.Signers) != 1 || !strings.HasPrefix(u.Signers[0], "deploy-app+") {
			t.Fatalf("err = %#v", err)
		}
	})

	t.Run("no keys", func(t *testing.T) {
		empty, err := NewKeyring(nil)
		if err != nil {
			t.Fatal(err)
		}
		var u *UnknownSignerError
		if _, err := empty.Open(signed); !errors.As(err, &u) {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("signed by another pipeline", func(t *testing.T) {
		text, err := Encode(example())
		if err != nil {
			t.Fatal(err)
		}
		s, err := note.Sign(&note.Note{Text: string(text)}, web.signer)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kr.Open(s); !errors.Is(err, ErrWrongPipeline) {
			t.Fatalf("err = %v, want ErrWrongPipeline", err)
		}
		if _, err := Sign(example(), web.signer); !errors.Is(err, ErrWrongPipeline) {
			t.Fatalf("sign with the wrong key: %v", err)
		}
	})

	t.Run("countersigned", func(t *testing.T) {
		n, err := note.Open(signed, note.VerifierList(mustVerifier(t, app.vkey)))
		if err != nil {
			t.Fatal(err)
		}
		s, err := note.Sign(n, web.signer)
		if err != nil {
			t.Fatal(err)
		}
		v, err := kr.Open(s)
		if err != nil || v.Pipeline.ID != "deploy-app" {
			t.Fatalf("countersigned: %v %+v", err, v)
		}
	})

	t.Run("malformed", func(t *testing.T) {
		for _, bad := range [][]byte{nil, []byte("hello\n"), signed[:len(signed)-2], append([]byte("\x00"), signed...)} {
			if _, err := kr.Open(bad); !errors.Is(err, ErrMalformed) {
				t.Errorf("Open(%q) err = %v, want ErrMalformed", bad, err)
			}
		}
	})
}

func mustVerifier(t *testing.T, vkey string) note.Verifier {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestDecodeRefuses(t *testing.T) {
	good, err := Encode(example())
	if err != nil {
		t.Fatal(err)
	}
	swap := func(old, new string) []byte { return bytes.Replace(good, []byte(old), []byte(new), 1) }
	tests := []struct {
		name string
		in   []byte
		msg  string
	}{
		{"no header", good[len(Header)+1:], "first line"},
		{"other header", swap(Header, "vigil.dev/manifest/v2"), "first line"},
		{"two lines", append(bytes.Clone(good), "{}\n"...), "one line of JSON"},
		{"unknown field", swap(`"run"`, `"colour":"red","run"`), `unknown field "colour"`},
		{"spaces", swap(`"run":`, `"run": `), "not in canonical form"},
		{"field order", swap(`"pipeline":"deploy-app","run":"412"`, `"run":"412","pipeline":"deploy-app"`), "not in canonical form"},
		{"offset time", swap(`2026-11-23T09:00:00Z`, `2026-11-23T10:00:00+01:00`), "created must be in UTC"},
		{"upper-case hex", bytes.Replace(good, []byte(`"sha256":"`), []byte(`"sha256":"A`), 1), "lower-case hex"},
		{"unsorted files", swap(`/srv/app/bin/app"`, `/srv/app/zzz"`), "sorted by path"},
		{"relative path", swap(`/srv/app/bin/app"`, `srv/app/bin/app"`), "absolute and clean"},
		{"empty hosts", swap(`"hosts":["app-*"]`, `"hosts":[]`), "hosts is empty"},
		{"null reviewers", swap(`"reviewers":["bob"]`, `"reviewers":null`), "not in canonical form"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(tc.in)
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want ErrMalformed with %q", err, tc.msg)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	m := example()
	m.Pipeline, m.Reviewers, m.Files = "deploy app", []string{"bob", "alice"}, nil
	err := m.Validate()
	for _, want := range []string{"must not contain space", "reviewers must be sorted", "files is empty"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want %q", err, want)
		}
	}
	m = example()
	exp := created.Add(time.Hour)
	m.Expires = &exp
	if !m.ValidAt(created) || !m.ValidAt(exp.Add(-1)) || m.ValidAt(exp) || m.ValidAt(created.Add(-1)) {
		t.Error("validity window")
	}
}

func TestEncodeUTC(t *testing.T) {
	m := example()
	m.Created = created.In(time.FixedZone("CET", 3600))
	a, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Encode(example())
	if err != nil || !bytes.Equal(a, b) {
		t.Fatalf("a local time encodes differently: %v\n%s\n%s", err, a, b)
	}
}

func TestNewKeyringErrors(t *testing.T) {
	k := newKey(t, "deploy-app")
	_, err := NewKeyring([]Pipeline{
		{ID: "deploy-app", Key: k.vkey, Hosts: []string{"*"}, Paths: []string{"/srv/**"}},
		{ID: "deploy-app", Key: k.vkey, Hosts: []string{"*"}, Paths: []string{"/srv/**"}},
		{ID: "other", Key: k.vkey, Hosts: []string{"*"}, Paths: []string{"/srv/**"}},
		{ID: "nokey", Key: "nokey+00000000+AAAA", Hosts: []string{"*"}, Paths: []string{"/srv/**"}},
		{ID: "deploy-app2", Key: newKey(t, "deploy-app2").vkey},
	})
	for _, want := range []string{`"deploy-app": registered twice`, `key is named "deploy-app"`, `pipeline "nokey": key:`, `"deploy-app2": hosts and paths`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want %q", err, want)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	k := newKey(b, "deploy-app")
	kr := keyring(b, k)
	m := example()
	m.Files = nil
	for i := range 10000 {
		m.Files = append(m.Files, File{Path: "/srv/app/f" + strings.Repeat("0", 6-len(itoa(i))) + itoa(i), SHA256: sha256.Sum256([]byte(itoa(i)))})
	}
	signed, err := Sign(m, k.signer)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(signed)))
	for b.Loop() {
		if _, err := kr.Open(signed); err != nil {
			b.Fatal(err)
		}
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}
