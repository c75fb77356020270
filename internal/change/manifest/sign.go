package manifest

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// Pipeline is a CI/CD pipeline allowed to deploy: its ID (the signing key's
// name), its ed25519 verifier key in signed-note form
// ("<id>+<hash>+<base64 key>", as printed by note.GenerateKey), and the
// hosts and paths it may deploy to. A manifest never authorizes anything
// outside its pipeline's scope, whatever it lists.
type Pipeline struct {
	ID    string
	Key   string
	Hosts []string // host globs (path.Match)
	Paths []string // path globs (policy.Match)
}

// Keyring holds the registered pipelines' verifier keys.
type Keyring struct {
	pipelines map[string]Pipeline
	verifiers note.Verifiers
}

// NewKeyring checks and registers the pipelines' keys.
func NewKeyring(pipelines []Pipeline) (*Keyring, error) {
	k := &Keyring{pipelines: make(map[string]Pipeline, len(pipelines))}
	var vs []note.Verifier
	var errs []error
	for _, p := range pipelines {
		v, err := note.NewVerifier(p.Key)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("pipeline %q: key: %w", p.ID, err))
			continue
		case v.Name() != p.ID:
			errs = append(errs, fmt.Errorf("pipeline %q: key is named %q, want the pipeline ID", p.ID, v.Name()))
			continue
		case len(p.Hosts) == 0 || len(p.Paths) == 0:
			errs = append(errs, fmt.Errorf("pipeline %q: hosts and paths must both be given", p.ID))
			continue
		}
		if _, dup := k.pipelines[p.ID]; dup {
			errs = append(errs, fmt.Errorf("pipeline %q: registered twice", p.ID))
			continue
		}
		k.pipelines[p.ID] = p
		vs = append(vs, v)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("register pipeline keys: %w", err)
	}
	k.verifiers = note.VerifierList(vs...)
	return k, nil
}

// Verified is a manifest whose signature checked out against a registered
// pipeline key, with that pipeline's scope.
type Verified struct {
	Manifest *Manifest
	// Pipeline is the registered pipeline whose key signed it.
	Pipeline Pipeline
	// Signed is the signed note as received, to keep as evidence.
	Signed []byte
}

// Covers returns the manifest's entry for path when the manifest targets
// host and the path and host lie within the pipeline's scope.
func (v *Verified) Covers(host, path string) (File, bool) {
	if !v.Manifest.Targets(host) || !matchHost(v.Pipeline.Hosts, host) || !matchPath(v.Pipeline.Paths, path) {
		return File{}, false
	}
	return v.Manifest.Lookup(path)
}

// UnknownSignerError is returned by Open for a well-formed note that no
// registered pipeline key signed. Manifest is the note's text decoded
// without any trust, kept only so a report can say what the rejected
// manifest claimed; it is nil if the text does not decode.
type UnknownSignerError struct {
	// Signers are the key names on the note ("name+hash").
	Signers  []string
	Manifest *Manifest
}

func (e *UnknownSignerError) Error() string {
	if len(e.Signers) == 0 {
		return "manifest is not signed"
	}
	return "manifest signed by unknown key " + strings.Join(e.Signers, ", ")
}

// ErrBadSignature is returned (wrapped) when a registered key's signature
// on the note does not verify: the manifest was altered after signing.
var ErrBadSignature = errors.New("bad manifest signature")

// ErrWrongPipeline is returned (wrapped) when a manifest names another
// pipeline than the one whose key signed it.
var ErrWrongPipeline = errors.New("manifest names another pipeline than its signer")

// Sign encodes and signs the manifest with the pipeline's signer (from
// note.NewSigner on the key made by note.GenerateKey).
func Sign(m *Manifest, s note.Signer) ([]byte, error) {
	if s.Name() != m.Pipeline {
		return nil, fmt.Errorf("sign manifest: %w: key %q, manifest %q", ErrWrongPipeline, s.Name(), m.Pipeline)
	}
	text, err := Encode(m)
	if err != nil {
		return nil, err
	}
	signed, err := note.Sign(&note.Note{Text: string(text)}, s)
	if err != nil {
		return nil, fmt.Errorf("sign manifest: %w", err)
	}
	return signed, nil
}

// Open verifies a signed manifest against the keyring, then decodes it.
// Errors: *UnknownSignerError when no registered key signed it,
// ErrBadSignature when a registered key's signature fails, ErrMalformed
// when the note or its text doesn't parse, ErrWrongPipeline when the text
// names another pipeline than the signer.
func (k *Keyring) Open(signed []byte) (*Verified, error) {
	if len(signed) > MaxSize {
		return nil, fmt.Errorf("open manifest: %w: larger than %d bytes", ErrMalformed, MaxSize)
	}
	n, err := note.Open(signed, k.verifiers)
	var unverified *note.UnverifiedNoteError
	var invalid *note.InvalidSignatureError
	switch {
	case errors.As(err, &unverified):
		e := &UnknownSignerError{}
		for _, s := range unverified.Note.UnverifiedSigs {
			e.Signers = append(e.Signers, fmt.Sprintf("%s+%08x", s.Name, s.Hash))
		}
		slices.Sort(e.Signers)
		e.Manifest, _ = Decode([]byte(unverified.Note.Text))
		return nil, e
	case errors.As(err, &invalid):
		return nil, fmt.Errorf("open manifest: %w: key %s+%08x", ErrBadSignature, invalid.Name, invalid.Hash)
	case err != nil:
		return nil, fmt.Errorf("open manifest: %w: %v", ErrMalformed, err)
	}
	m, err := Decode([]byte(n.Text))
	if err != nil {
		return nil, fmt.Errorf("open manifest: %w", err)
	}
	// A note can carry several signatures; the one that counts is the
	// pipeline the manifest names. Other registered signers don't lend it
	// their scope.
	for _, s := range n.Sigs {
		if s.Name == m.Pipeline {
			return &Verified{Manifest: m, Pipeline: k.pipelines[s.Name], Signed: signed}, nil
		}
	}
	return nil, fmt.Errorf("open manifest: %w: manifest names %q, signed by %q", ErrWrongPipeline, m.Pipeline, n.Sigs[0].Name)
}
