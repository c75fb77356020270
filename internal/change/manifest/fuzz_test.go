package manifest

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// FuzzDecode checks that Decode never panics and that whatever it accepts
// is canonical: encoding the result gives back the input.
func FuzzDecode(f *testing.F) {
	if golden, err := os.ReadFile(filepath.Join("testdata", "example.manifest")); err == nil {
		f.Add(golden)
	}
	f.Fuzz(func(t *testing.T, text []byte) {
		m, err := Decode(text)
		if err != nil {
			return
		}
		again, err := Encode(m)
		if err != nil {
			t.Fatalf("decoded manifest does not encode: %v", err)
		}
		if !bytes.Equal(again, text) {
			t.Fatalf("not canonical:\n%q\n%q", text, again)
		}
	})
}

// FuzzOpen checks that Open never panics on arbitrary notes and that a
// note it accepts carries a valid signature of the registered key.
func FuzzOpen(f *testing.F) {
	// A fixed key, so the seed corpus stays valid across runs.
	seed := bytes.Repeat([]byte{7}, ed25519.SeedSize)
	priv := ed25519.NewKeyFromSeed(seed)
	vkey, err := note.NewEd25519VerifierKey("deploy-app", priv.Public().(ed25519.PublicKey))
	if err != nil {
		f.Fatal(err)
	}
	kr, err := NewKeyring([]Pipeline{{ID: "deploy-app", Key: vkey, Hosts: []string{"*"}, Paths: []string{"/**"}}})
	if err != nil {
		f.Fatal(err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		f.Fatal(err)
	}
	if signed, err := os.ReadFile(filepath.Join("testdata", "example.signed")); err == nil {
		f.Add(signed)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		v, err := kr.Open(msg)
		if err != nil {
			return
		}
		if _, err := note.Open(msg, note.VerifierList(verifier)); err != nil {
			t.Fatalf("Open accepted a note the key did not sign: %v", err)
		}
		if v.Manifest.Pipeline != "deploy-app" {
			t.Fatalf("accepted manifest of pipeline %q", v.Manifest.Pipeline)
		}
	})
}

// seedSigner is the fixed key FuzzOpen registers, to sign its seed corpus.
func seedSigner(t testing.TB) note.Signer {
	seed := bytes.Repeat([]byte{7}, ed25519.SeedSize)
	priv := ed25519.NewKeyFromSeed(seed)
	vkey, err := note.NewEd25519VerifierKey("deploy-app", priv.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	// A signer key is the verifier key with the seed in place of the
	// public key (golang.org/x/mod/sumdb/note key format).
	name, rest, _ := strings.Cut(vkey, "+")
	hash, _, _ := strings.Cut(rest, "+")
	skey := "PRIVATE+KEY+" + name + "+" + hash + "+" + base64.StdEncoding.EncodeToString(append([]byte{1}, seed...))
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestGoldenSigned pins the signed form: ed25519 signatures are
// deterministic, so the same manifest and key give the same bytes. Run
// with UPDATE_GOLDEN=1 to rewrite it and the fuzz seed corpus.
func TestGoldenSigned(t *testing.T) {
	signed, err := Sign(example(), seedSigner(t))
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "example.signed")
	if os.Getenv("UPDATE_GOLDEN") != "" {
		if err := os.WriteFile(golden, signed, 0o644); err != nil {
			t.Fatal(err)
		}
		text, _ := Encode(example())
		writeSeed(t, "FuzzDecode", "example", text)
		writeSeed(t, "FuzzOpen", "example", signed)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(signed, want) {
		t.Fatalf("signed form changed:\n%s\nwant\n%s", signed, want)
	}
}

func writeSeed(t *testing.T, fuzz, name string, data []byte) {
	dir := filepath.Join("testdata", "fuzz", fuzz)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(data)) + ")\n"
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}
