// Package pkgdb answers, for a path, which installed package owns it and
// what checksum the package recorded for its content, and checks a file on
// disk against that. The classifier (package change) uses the answer as
// evidence that a change made by the package manager installed exactly
// what the package ships.
//
// The checksums are the package manager's own: MD5 for dpkg. They are only
// used to match a file against its package's manifest, never as Vigil's
// integrity hash; Check ties the match to the change record by hashing the
// same bytes with the record's algorithm.
//
// dpkg is implemented here (Dpkg). Another package manager plugs in by
// implementing DB: rpm would read the rpmdb (rpmdb.sqlite headers, or
// `rpm -q --dump`), whose per-file digests are SHA-256 on current systems.
package pkgdb

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"syscall"

	"github.com/zeebo/blake3"

	"github.com/vigilfim/vigil/internal/change"
	"github.com/vigilfim/vigil/internal/fim"
)

// File is a package's record of one of its files.
type File struct {
	Manager string // "dpkg"
	Package string
	Version string
	Arch    string
	// Path is the path asked about; on a merged-/usr system it may differ
	// from the path the package lists ("/usr/bin/ls" for "/bin/ls").
	Path     string
	Conffile bool
	// Alg names the package manager's checksum ("md5", "sha256").
	Alg string
	Sum []byte
}

// DB is a package database: who owns a path. Several packages may list the
// same path (Multi-Arch: same packages of two architectures); Lookup
// returns all of them, in a stable order.
type DB interface {
	Lookup(path string) []File
}

// checksum returns a hash for one of the package managers' checksum
// algorithms.
func checksum(alg string) (hash.Hash, error) {
	switch alg {
	case "md5":
		return md5.New(), nil
	case "sha256":
		return sha256.New(), nil
	case "sha512":
		return sha512.New(), nil
	}
	return nil, fmt.Errorf("unsupported package checksum %q", alg)
}

func contentHash(alg fim.HashAlg) (hash.Hash, error) {
	switch alg {
	case fim.SHA256:
		return sha256.New(), nil
	case fim.BLAKE3:
		return blake3.New(), nil
	}
	return nil, fmt.Errorf("unsupported content hash %s", alg)
}

// ErrNotRegular is returned by Check for a path that is not a regular
// file: packages record checksums for regular files only.
var ErrNotRegular = errors.New("not a regular file")

// Check looks the path up in db and, if a package owns it, reads the file
// once, computing the package's checksum and the content digest with alg
// (the algorithm of the change record). It returns nil and no error when no
// package owns the path. The file is opened without following a final
// symlink and read through the descriptor, so the bytes checked are the
// bytes of the file at path.
func Check(ctx context.Context, db DB, path string, alg fim.HashAlg) (*change.PackageEvidence, error) {
	owners := db.Lookup(path)
	if len(owners) == 0 {
		return nil, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("check package file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("check package file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("check package file %s: %w", path, ErrNotRegular)
	}
	content, err := contentHash(alg)
	if err != nil {
		return nil, fmt.Errorf("check package file %s: %w", path, err)
	}
	// One checksum per algorithm the owners use (normally just one).
	sums := map[string]hash.Hash{}
	writers := []io.Writer{content}
	for _, o := range owners {
		if sums[o.Alg] != nil {
			continue
		}
		h, err := checksum(o.Alg)
		if err != nil {
			return nil, fmt.Errorf("check package file %s: %w", path, err)
		}
		sums[o.Alg] = h
		writers = append(writers, h)
	}
	if _, err := io.Copy(io.MultiWriter(writers...), ctxReader{ctx, f}); err != nil {
		return nil, fmt.Errorf("check package file: %w", err)
	}
	digest := fim.Digest{Alg: alg, Sum: content.Sum(nil)}
	pick := owners[0]
	matches := false
	for _, o := range owners {
		if bytes.Equal(sums[o.Alg].Sum(nil), o.Sum) {
			pick, matches = o, true
			break
		}
	}
	return &change.PackageEvidence{
		Manager: pick.Manager, Package: pick.Package, Version: pick.Version, Arch: pick.Arch,
		Path: path, Conffile: pick.Conffile, Matches: matches, Content: digest.String(),
	}, nil
}

// ctxReader stops a long read when the context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
