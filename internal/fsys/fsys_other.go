//go:build !linux

package fsys

import (
	"context"
	"io/fs"

	"github.com/vigilfim/vigil/internal/fim"
)

// Dir is an open directory; see the Linux implementation.
type Dir struct{ path string }

// DirEntry is one name in a directory listing.
type DirEntry struct {
	Name string
	Type fim.FileType
}

func unsupported(op, path string) error {
	return &fs.PathError{Op: op, Path: path, Err: ErrUnsupported}
}

// OpenDir returns ErrUnsupported.
func OpenDir(path string) (*Dir, error) { return nil, unsupported("open", path) }

// Lstat returns ErrUnsupported.
func Lstat(path string) (*fim.Entry, error) { return nil, unsupported("lstat", path) }

// LstatAttrs returns ErrUnsupported.
func LstatAttrs(path string, what fim.AttrSet) (*fim.Entry, error) {
	return nil, unsupported("lstat", path)
}

// Hash returns ErrUnsupported.
func Hash(ctx context.Context, path string, want *fim.Entry, req HashRequest) (HashResult, error) {
	return HashResult{}, unsupported("hash", path)
}

// OpenDir returns ErrUnsupported.
func (d *Dir) OpenDir(name, path string) (*Dir, error) { return nil, unsupported("open", path) }

// Path returns the directory's path.
func (d *Dir) Path() string { return d.path }

// Close does nothing.
func (d *Dir) Close() error { return nil }

// Stat returns ErrUnsupported.
func (d *Dir) Stat(what fim.AttrSet) (*fim.Entry, error) { return nil, unsupported("stat", d.path) }

// Lstat returns ErrUnsupported.
func (d *Dir) Lstat(name, path string, what fim.AttrSet) (*fim.Entry, error) {
	return nil, unsupported("lstat", path)
}

// ReadDir returns ErrUnsupported.
func (d *Dir) ReadDir() ([]DirEntry, error) { return nil, unsupported("read directory", d.path) }

// Hash returns ErrUnsupported.
func (d *Dir) Hash(ctx context.Context, name, path string, want *fim.Entry, req HashRequest) (HashResult, error) {
	return HashResult{}, unsupported("hash", path)
}
