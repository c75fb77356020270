// Package manifest defines deployment manifests: the list of files a CI/CD
// pipeline run deploys, with their expected SHA-256, the hosts it targets,
// the commit it was built from and who wrote and reviewed that commit.
//
// A manifest is signed by the pipeline with an ed25519 key as a signed note
// (golang.org/x/mod/sumdb/note, the C2SP signed-note format). The note text
// is the canonical encoding of the manifest: a header line, one line of
// compact JSON with a fixed field order and files sorted in walk order, and
// a final newline. Decoding re-encodes and insists on byte equality, so a
// manifest has exactly one signed form. Open verifies the signature before
// it parses the text (docs/change-control.md has the format).
package manifest

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vigilfim/vigil/internal/fim"
	"github.com/vigilfim/vigil/internal/policy"
)

// Header is the first line of every encoded manifest. It names the format
// and its version, and keeps a pipeline key that also signs other notes
// (such as log checkpoints) from having those mistaken for manifests.
const Header = "vigil.dev/manifest/v1"

// Limits on what Decode and Open accept. A manifest comes from outside the
// host; these bound the memory a hostile or broken one can make us use. A
// million files is far above any real deploy.
const (
	MaxSize      = 64 << 20
	MaxFiles     = 1 << 20
	maxFieldLen  = 4096
	maxReviewers = 1000
	maxHosts     = 10000
)

// ErrMalformed is returned (wrapped) for a manifest that does not decode.
var ErrMalformed = errors.New("malformed manifest")

// File is one deployed file and the SHA-256 of the content it must have.
type File struct {
	// Path is absolute and clean; raw bytes, like fim.Entry.Path.
	Path   string
	SHA256 [32]byte
}

type fileJSON struct {
	Path    string `json:"path"`
	PathB64 string `json:"path_b64,omitempty"`
	SHA256  string `json:"sha256"`
}

// MarshalJSON writes {"path", "path_b64" (only for non-UTF-8 names),
// "sha256" (lower-case hex)}, the same name convention as the change record.
func (f File) MarshalJSON() ([]byte, error) {
	j := fileJSON{SHA256: hex.EncodeToString(f.SHA256[:])}
	j.Path, j.PathB64 = fim.EncodeName(f.Path)
	return json.Marshal(j)
}

// UnmarshalJSON is the inverse of MarshalJSON.
func (f *File) UnmarshalJSON(b []byte) error {
	var j fileJSON
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&j); err != nil {
		return err
	}
	p, err := fim.DecodeName(j.Path, j.PathB64)
	if err != nil {
		return err
	}
	sum, err := hex.DecodeString(j.SHA256)
	if err != nil || len(sum) != 32 || strings.ToLower(j.SHA256) != j.SHA256 {
		return fmt.Errorf("file %q: sha256 %q: want 64 lower-case hex digits", j.Path, j.SHA256)
	}
	f.Path = p
	copy(f.SHA256[:], sum)
	return nil
}

// Digest returns the expected content as a fim digest, for comparison
// with a change's new content.
func (f File) Digest() fim.Digest { return fim.Digest{Alg: fim.SHA256, Sum: f.SHA256[:]} }

// Manifest is what one pipeline run deploys. The JSON field order below is
// the canonical order.
type Manifest struct {
	// Pipeline is the ID of the pipeline whose key signs the manifest; it
	// must equal the signing key's name.
	Pipeline string `json:"pipeline"`
	// Run identifies the pipeline run (build number, job ID).
	Run string `json:"run"`
	// Commit is the source revision deployed.
	Commit string `json:"commit"`
	// Author is who wrote the commit, as a person ID of the directory.
	Author string `json:"author"`
	// Reviewers approved the commit (person IDs), sorted.
	Reviewers []string `json:"reviewers"`
	// Hosts are host-name globs (path.Match syntax) the deploy targets.
	Hosts []string `json:"hosts"`
	// Created is when the manifest was made, in UTC.
	Created time.Time `json:"created"`
	// Expires, when set, ends the manifest's validity: a change made later
	// is not authorized by it, so an old release can't be replayed forever.
	Expires *time.Time `json:"expires,omitempty"`
	// Files are sorted by fim.ComparePaths, paths unique.
	Files []File `json:"files"`
}

// Validate checks the manifest's fields; it is what Encode and Decode
// require.
func (m *Manifest) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	for _, f := range []struct{ name, v string }{{"pipeline", m.Pipeline}, {"run", m.Run}, {"commit", m.Commit}, {"author", m.Author}} {
		switch {
		case f.v == "":
			bad("%s is empty", f.name)
		case len(f.v) > maxFieldLen || !utf8.ValidString(f.v):
			bad("%s is not valid UTF-8 of at most %d bytes", f.name, maxFieldLen)
		}
	}
	if strings.ContainsAny(m.Pipeline, " +\n") {
		bad("pipeline %q: must not contain space, plus or newline (it is a signed-note key name)", m.Pipeline)
	}
	if len(m.Reviewers) > maxReviewers {
		bad("more than %d reviewers", maxReviewers)
	}
	if !slices.IsSorted(m.Reviewers) || len(slices.Compact(slices.Clone(m.Reviewers))) != len(m.Reviewers) {
		bad("reviewers must be sorted and unique")
	}
	for _, r := range m.Reviewers {
		if r == "" || len(r) > maxFieldLen || !utf8.ValidString(r) {
			bad("reviewer %q is not a valid person ID", r)
		}
	}
	if len(m.Hosts) == 0 {
		bad("hosts is empty")
	}
	if len(m.Hosts) > maxHosts {
		bad("more than %d hosts", maxHosts)
	}
	for _, h := range m.Hosts {
		if _, err := path.Match(h, ""); err != nil || h == "" || strings.Contains(h, "/") {
			bad("host glob %q is invalid", h)
		}
	}
	if m.Created.IsZero() {
		bad("created is missing")
	}
	if m.Created.Location() != time.UTC {
		bad("created must be in UTC")
	}
	if m.Expires != nil && (m.Expires.Location() != time.UTC || !m.Expires.After(m.Created)) {
		bad("expires must be in UTC and after created")
	}
	if len(m.Files) == 0 {
		bad("files is empty")
	}
	if len(m.Files) > MaxFiles {
		bad("more than %d files", MaxFiles)
	}
	for i, f := range m.Files {
		if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path {
			bad("file %q: path must be absolute and clean", f.Path)
		}
		if i > 0 && fim.ComparePaths(m.Files[i-1].Path, f.Path) >= 0 {
			bad("file %q: files must be sorted by path and unique", f.Path)
		}
		if len(errs) > 20 { // enough to act on; a broken million-file list would bury the first errors
			bad("too many errors")
			break
		}
	}
	return errors.Join(errs...)
}

// Encode returns the canonical encoding of the manifest: the note text that
// is signed.
// Times are written in UTC whatever their location.
func Encode(m *Manifest) ([]byte, error) {
	c := *m
	c.Created = c.Created.UTC()
	if c.Expires != nil {
		e := c.Expires.UTC()
		c.Expires = &e
	}
	// One form for "no reviewers": [] (json writes a nil slice as null).
	if c.Reviewers == nil {
		c.Reviewers = []string{}
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	body, err := json.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	out := make([]byte, 0, len(Header)+len(body)+2)
	out = append(out, Header...)
	out = append(out, '\n')
	out = append(out, body...)
	return append(out, '\n'), nil
}

// Decode parses a canonical manifest text. It does not verify anything:
// use Open for a signed manifest. Input that decodes but is not in
// canonical form is refused.
func Decode(text []byte) (*Manifest, error) {
	if len(text) > MaxSize {
		return nil, fmt.Errorf("decode manifest: %w: larger than %d bytes", ErrMalformed, MaxSize)
	}
	rest, ok := bytes.CutPrefix(text, []byte(Header+"\n"))
	if !ok {
		return nil, fmt.Errorf("decode manifest: %w: first line is not %q", ErrMalformed, Header)
	}
	body, ok := bytes.CutSuffix(rest, []byte("\n"))
	if !ok || bytes.IndexByte(body, '\n') >= 0 {
		return nil, fmt.Errorf("decode manifest: %w: want one line of JSON after the header", ErrMalformed)
	}
	m := new(Manifest)
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(m); err != nil {
		return nil, fmt.Errorf("decode manifest: %w: %v", ErrMalformed, err)
	}
	if d.More() {
		return nil, fmt.Errorf("decode manifest: %w: data after the JSON object", ErrMalformed)
	}
	// encoding/json keeps a decoded time's offset as a fixed zone; a "Z"
	// time decodes as UTC, so anything else is not canonical.
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("decode manifest: %w: %w", ErrMalformed, err)
	}
	again, err := Encode(m)
	if err != nil || !bytes.Equal(again, text) {
		return nil, fmt.Errorf("decode manifest: %w: not in canonical form", ErrMalformed)
	}
	return m, nil
}

// Lookup returns the manifest's entry for the path.
func (m *Manifest) Lookup(p string) (File, bool) {
	i, ok := slices.BinarySearchFunc(m.Files, p, func(f File, p string) int { return fim.ComparePaths(f.Path, p) })
	if !ok {
		return File{}, false
	}
	return m.Files[i], true
}

// Targets reports whether the manifest's host globs match host.
func (m *Manifest) Targets(host string) bool { return matchHost(m.Hosts, host) }

// ValidAt reports whether a change at t falls within the manifest's
// validity: not before it was created, and not after it expires.
func (m *Manifest) ValidAt(t time.Time) bool {
	return !t.Before(m.Created) && (m.Expires == nil || t.Before(*m.Expires))
}

func matchHost(globs []string, host string) bool {
	for _, g := range globs {
		if ok, _ := path.Match(g, host); ok {
			return true
		}
	}
	return false
}

func matchPath(globs []string, p string) bool {
	for _, g := range globs {
		if policy.Match(g, p) {
			return true
		}
	}
	return false
}
