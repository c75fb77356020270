package signing

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

func TestLoadOrCreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	path := filepath.Join(dir, "host.key")
	k, err := LoadOrCreate(path, "vigil-host1")
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("key file mode = %04o, want 0600", got)
	}
	di, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := di.Mode().Perm(); got != 0o700 {
		t.Errorf("key dir mode = %04o, want 0700", got)
	}
	if k.Name() != "vigil-host1" {
		t.Errorf("Name = %q", k.Name())
	}
	if !strings.HasPrefix(k.VerifierKey(), "vigil-host1+") {
		t.Errorf("VerifierKey = %q", k.VerifierKey())
	}

	// Second use loads the same key, whatever name is asked for.
	k2, err := LoadOrCreate(path, "another-name")
	if err != nil {
		t.Fatal(err)
	}
	if k2.VerifierKey() != k.VerifierKey() {
		t.Errorf("reload gave a different key: %s vs %s", k2.VerifierKey(), k.VerifierKey())
	}

	// Signatures made with the key verify with the public key alone.
	msg, err := note.Sign(&note.Note{Text: "hello\n"}, k.Signer())
	if err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(t.TempDir(), "host.pub")
	if err := k.WritePublic(pub); err != nil {
		t.Fatal(err)
	}
	v, err := LoadVerifier(pub)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := note.Open(msg, note.VerifierList(v)); err != nil {
		t.Errorf("open note with public key: %v", err)
	}
	if _, err := note.Open(msg, note.VerifierList(k.Verifier())); err != nil {
		t.Errorf("open note with key's verifier: %v", err)
	}
}

func TestInsecureKeyRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "host.key")
	if _, err := LoadOrCreate(path, "h"); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o644, 0o660} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := LoadOrCreate(path, "h")
		if !errors.Is(err, ErrInsecureKeyFile) {
			t.Errorf("mode %04o: err = %v, want ErrInsecureKeyFile", mode, err)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	k, err := LoadOrCreate(filepath.Join(dir, "real.key"), "h")
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.key")
	if err := os.Symlink(filepath.Join(dir, "real.key"), link); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		fn   func() error
		want string
	}{
		{"garbage private", func() error {
			_, err := LoadOrCreate(write("g.key", "hello\n", 0o600), "h")
			return err
		}, "not a signed-note private key"},
		{"symlink refused", func() error { _, err := LoadOrCreate(link, "h"); return err }, "open key"},
		{"invalid name", func() error {
			_, err := LoadOrCreate(filepath.Join(dir, "new.key"), "has space")
			return err
		}, "invalid key name"},
		{"plus in name", func() error {
			_, err := LoadOrCreate(filepath.Join(dir, "new2.key"), "a+b")
			return err
		}, "invalid key name"},
		{"huge file", func() error {
			_, err := LoadVerifier(write("big.pub", strings.Repeat("x", 5000), 0o644))
			return err
		}, "not a key file"},
		{"private as public", func() error {
			_, err := LoadVerifier(filepath.Join(dir, "real.key"))
			return err
		}, "holds a private key"},
		{"garbage public", func() error {
			_, err := LoadVerifier(write("g.pub", "nope+12345678+AAAA\n", 0o644))
			return err
		}, "not a signed-note verifier key"},
		{"two lines", func() error {
			_, err := LoadVerifier(write("two.pub", k.VerifierKey()+"\n"+k.VerifierKey()+"\n", 0o644))
			return err
		}, "want one key line"},
		{"missing public", func() error {
			_, err := LoadVerifier(filepath.Join(dir, "missing.pub"))
			if !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("not ErrNotExist: %v", err)
			}
			return err
		}, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.fn()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want containing %q", err, tt.want)
			}
		})
	}
}

// TestConcurrentCreateInProcess races goroutines creating the same key.
func TestConcurrentCreateInProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k", "host.key")
	const n = 16
	keys := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			k, err := LoadOrCreate(path, "h")
			errs[i] = err
			if err == nil {
				keys[i] = k.VerifierKey()
			}
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("creator %d: %v", i, errs[i])
		}
		if keys[i] != keys[0] {
			t.Fatalf("creator %d got key %s, creator 0 got %s", i, keys[i], keys[0])
		}
	}
	assertNoTemps(t, filepath.Dir(path))
}

const childEnv = "VIGIL_SIGNING_TEST_CHILD_KEY"

// TestConcurrentCreateProcesses starts several processes (this test binary
// re-executed) that all create the same key at once; they must all end up
// with one key.
func TestConcurrentCreateProcesses(t *testing.T) {
	if p := os.Getenv(childEnv); p != "" {
		k, err := LoadOrCreate(p, "h")
		if err != nil {
			fmt.Println("ERROR", err)
			os.Exit(1)
		}
		fmt.Println(k.VerifierKey())
		os.Exit(0)
	}
	path := filepath.Join(t.TempDir(), "host.key")
	const n = 6
	cmds := make([]*exec.Cmd, n)
	outs := make([]strings.Builder, n)
	for i := range n {
		cmds[i] = exec.Command(os.Args[0], "-test.run=^TestConcurrentCreateProcesses$")
		cmds[i].Env = append(os.Environ(), childEnv+"="+path)
		cmds[i].Stdout = &outs[i]
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	var first string
	for i := range n {
		if err := cmds[i].Wait(); err != nil {
			t.Fatalf("child %d: %v: %s", i, err, outs[i].String())
		}
		got := strings.TrimSpace(outs[i].String())
		if i == 0 {
			first = got
		} else if got != first {
			t.Fatalf("child %d got key %q, child 0 got %q", i, got, first)
		}
	}
	k, err := LoadOrCreate(path, "h")
	if err != nil {
		t.Fatal(err)
	}
	if k.VerifierKey() != first {
		t.Fatalf("key on disk %s differs from children's %s", k.VerifierKey(), first)
	}
	assertNoTemps(t, filepath.Dir(path))
}

func assertNoTemps(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
}
