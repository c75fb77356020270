// Package signing manages a host's ed25519 signing key.
//
// Keys use the signed-note key encoding of golang.org/x/mod/sumdb/note
// (C2SP signed-note): the private key file holds one line
// "PRIVATE+KEY+<name>+<hash>+<base64>" and the public verifier key file one
// line "<name>+<hash>+<base64>". Using that encoding means the same host key
// signs baselines and, later, evidence-log checkpoints, and that an auditor
// can verify either with only the public verifier key and any signed-note
// implementation.
//
// The private key file is created on first use, atomically and exactly
// once even when two processes start at the same moment: the key is written
// to a private temporary file and then hard-linked into place, and link(2)
// fails if the name already exists, so the loser discards its key and loads
// the winner's.
package signing

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"unicode"
	"unicode/utf8"

	"github.com/vigilfim/vigil/internal/atomicfile"
	"golang.org/x/mod/sumdb/note"
)

// maxKeyFile bounds how much of a key file is read: a key line is about 100
// bytes, so anything much larger is not a key file.
const maxKeyFile = 4096

// ErrInsecureKeyFile is returned (wrapped) when a private key file can be
// read by group or others: such a key may already be known to someone else,
// so signatures made with it prove nothing.
var ErrInsecureKeyFile = errors.New("insecure private key file")

// Key is a host's signing key.
type Key struct {
	signer   note.Signer
	verifier note.Verifier
	vkey     string
}

// Signer returns the note signer for the key.
func (k *Key) Signer() note.Signer { return k.signer }

// Verifier returns the note verifier for the key's public half.
func (k *Key) Verifier() note.Verifier { return k.verifier }

// VerifierKey returns the public verifier key string
// ("<name>+<hash>+<base64>").
func (k *Key) VerifierKey() string { return k.vkey }

// Name returns the key's name.
func (k *Key) Name() string { return k.signer.Name() }

// WritePublic writes the public verifier key to path (mode 0644: it is
// public), atomically replacing any existing file.
func (k *Key) WritePublic(path string) error {
	if err := atomicfile.WriteFile(path, []byte(k.vkey+"\n"), 0o644); err != nil {
		return fmt.Errorf("write public key %s: %w", path, err)
	}
	return nil
}

// ValidName reports whether name can name a key: signed notes require a
// non-empty UTF-8 name without spaces or '+'.
func ValidName(name string) bool {
	return name != "" && utf8.ValidString(name) && strings.IndexFunc(name, unicode.IsSpace) < 0 &&
		!strings.Contains(name, "+")
}

// LoadOrCreate loads the private key at path, creating it (with the given
// name) if it does not exist yet. The file is created with mode 0600, and
// its directory with 0700 if missing. An existing key keeps its own name:
// renaming a host must not silently replace the key that signed its past
// baselines. A key file readable by group or others is refused with an
// error wrapping ErrInsecureKeyFile.
func LoadOrCreate(path, name string) (*Key, error) {
	k, err := load(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	if !ValidName(name) {
		return nil, fmt.Errorf("create key %s: invalid key name %q (want non-empty, no spaces or '+')", path, name)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create key %s: %w", path, err)
	}
	skey, _, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		return nil, fmt.Errorf("create key %s: %w", path, err)
	}
	if err := createExclusive(path, []byte(skey+"\n")); err != nil {
		return nil, fmt.Errorf("create key %s: %w", path, err)
	}
	// Load what is on disk rather than what we generated: if another
	// process won the race, its key is the one.
	return load(path)
}

// createExclusive makes path hold data unless path already exists (in
// which case it returns nil and leaves the existing file alone). The data
// is complete and synced before the name appears, so a crash never leaves
// a half-written key behind the final name.
func createExclusive(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName)
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	// link(2), unlike rename(2), refuses to replace an existing name: this
	// is what makes concurrent first use produce exactly one key.
	if err := os.Link(tmpName, path); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return atomicfile.SyncDir(dir)
}

func load(path string) (*Key, error) {
	data, err := readKeyFile(path, true)
	if err != nil {
		return nil, err
	}
	skey := strings.TrimSuffix(string(data), "\n")
	signer, err := note.NewSigner(skey)
	if err != nil {
		return nil, fmt.Errorf("load key %s: not a signed-note private key: %w", path, err)
	}
	vkey, err := verifierKey(skey)
	if err != nil {
		return nil, fmt.Errorf("load key %s: %w", path, err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("load key %s: %w", path, err)
	}
	return &Key{signer: signer, verifier: verifier, vkey: vkey}, nil
}

// verifierKey derives the public verifier key from an encoded private key.
func verifierKey(skey string) (string, error) {
	// Format: PRIVATE+KEY+<name>+<hash>+<base64(alg || seed)>; NewSigner
	// has already validated it.
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 {
		return "", errors.New("malformed private key")
	}
	seed, err := decodeSeed(parts[4])
	if err != nil {
		return "", err
	}
	return note.NewEd25519VerifierKey(parts[2], seed.Public().(ed25519.PublicKey))
}

// LoadVerifier reads a public verifier key file written by WritePublic (or
// any file holding one signed-note verifier key line), so that a baseline or
// checkpoint can be verified with only the public key.
func LoadVerifier(path string) (note.Verifier, error) {
	data, err := readKeyFile(path, false)
	if err != nil {
		return nil, err
	}
	vkey := strings.TrimSpace(string(data))
	if strings.HasPrefix(vkey, "PRIVATE+KEY+") {
		return nil, fmt.Errorf("load verifier key %s: file holds a private key; give the public key file (see WritePublic)", path)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("load verifier key %s: not a signed-note verifier key: %w", path, err)
	}
	return v, nil
}

// readKeyFile reads a small key file without following a symlink at the
// last component. With private set, the file must not be accessible by
// group or others.
func readKeyFile(path string, private bool) ([]byte, error) {
	f, err := openNoFollow(path)
	if err != nil {
		return nil, fmt.Errorf("open key %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat key %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("open key %s: not a regular file (%s)", path, fi.Mode().Type())
	}
	if private && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("open key %s: mode %04o lets group or others read the private key; run chmod 600 %s if it was never exposed, otherwise make a new key: %w",
			path, fi.Mode().Perm(), path, ErrInsecureKeyFile)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("read key %s: %w", path, err)
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("read key %s: larger than %d bytes, not a key file", path, maxKeyFile)
	}
	if bytes.Count(data, []byte("\n")) > 1 {
		return nil, fmt.Errorf("read key %s: want one key line", path)
	}
	return data, nil
}

// decodeSeed decodes the base64 key data of a signed-note private key:
// algorithm byte 1 (ed25519) followed by the 32-byte seed.
func decodeSeed(b64 string) (ed25519.PrivateKey, error) {
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != algEd25519 {
		return nil, errors.New("malformed ed25519 private key")
	}
	return ed25519.NewKeyFromSeed(raw[1:]), nil
}

// algEd25519 is the signed-note algorithm identifier for ed25519.
const algEd25519 = 1

func openNoFollow(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
}
