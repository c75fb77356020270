package fim

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// FileType is the kind of a file system entry.
type FileType uint8

// File types. The zero value is deliberately invalid so that an entry that
// was never filled in can't pass for a regular file.
const (
	TypeUnknown FileType = iota
	TypeFile
	TypeDir
	TypeSymlink
	TypeFIFO
	TypeSocket
	TypeCharDev
	TypeBlockDev
)

var typeNames = [...]string{"unknown", "file", "dir", "symlink", "fifo", "socket", "char", "block"}

// String returns the type's name as used in JSON and reports.
func (t FileType) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("type(%d)", t)
}

// IsDevice reports whether the type is a character or block device: the
// only types whose device number (Entry.Rdev) means anything.
func (t FileType) IsDevice() bool { return t == TypeCharDev || t == TypeBlockDev }

// ParseFileType is the inverse of FileType.String.
func ParseFileType(s string) (FileType, error) {
	for i, n := range typeNames {
		if n == s && i != 0 {
			return FileType(i), nil
		}
	}
	return TypeUnknown, fmt.Errorf("unknown file type %q", s)
}

// HashAlg is a content hash algorithm. Only collision-resistant algorithms
// are offered: an integrity check built on MD5 or SHA-1 proves nothing.
type HashAlg uint8

// Supported hash algorithms. SHA-256 is the default because it is FIPS
// approved and runs at memory speed with SHA-NI; BLAKE3 is faster where
// SHA-NI is missing.
const (
	HashNone HashAlg = iota
	SHA256
	BLAKE3
)

// String returns the algorithm's name as used in policies and digests.
func (h HashAlg) String() string {
	switch h {
	case SHA256:
		return "sha256"
	case BLAKE3:
		return "blake3"
	case HashNone:
		return "none"
	}
	return fmt.Sprintf("hash(%d)", h)
}

// Size returns the digest length in bytes.
func (h HashAlg) Size() int {
	switch h {
	case SHA256, BLAKE3:
		return 32
	}
	return 0
}

// ParseHashAlg returns the algorithm with the given name.
func ParseHashAlg(s string) (HashAlg, error) {
	switch s {
	case "sha256", "sha-256", "SHA256", "SHA-256":
		return SHA256, nil
	case "blake3", "BLAKE3":
		return BLAKE3, nil
	case "md5", "sha1", "sha-1", "MD5", "SHA1", "SHA-1":
		return HashNone, fmt.Errorf("hash %q is not collision resistant and is not supported (use sha256 or blake3)", s)
	}
	return HashNone, fmt.Errorf("unknown hash %q (use sha256 or blake3)", s)
}

// Digest is a content hash together with the algorithm that produced it.
type Digest struct {
	Alg HashAlg
	Sum []byte
}

// IsZero reports whether no content hash was recorded.
func (d Digest) IsZero() bool { return d.Alg == HashNone && len(d.Sum) == 0 }

// Equal reports whether two digests are the same. Digests made with
// different algorithms are never equal.
func (d Digest) Equal(o Digest) bool { return d.Alg == o.Alg && bytes.Equal(d.Sum, o.Sum) }

// String formats the digest as "alg:hex".
func (d Digest) String() string {
	if d.IsZero() {
		return ""
	}
	return d.Alg.String() + ":" + hex.EncodeToString(d.Sum)
}

// ParseDigest is the inverse of Digest.String.
func ParseDigest(s string) (Digest, error) {
	alg, hexSum, ok := strings.Cut(s, ":")
	if !ok {
		return Digest{}, fmt.Errorf("digest %q: want alg:hex", s)
	}
	h, err := ParseHashAlg(alg)
	if err != nil {
		return Digest{}, err
	}
	sum, err := hex.DecodeString(hexSum)
	if err != nil || len(sum) != h.Size() {
		return Digest{}, fmt.Errorf("digest %q: want %d hex bytes", s, h.Size())
	}
	return Digest{Alg: h, Sum: sum}, nil
}

// Xattr is one extended attribute. POSIX ACLs are kept apart in Entry.ACL
// because users reason about them as permissions, not as opaque bytes.
type Xattr struct {
	Name  string
	Value []byte
}

// Entry is everything Vigil records about one file system entry. Paths are
// absolute and kept as raw bytes in a string: Linux names need not be UTF-8.
type Entry struct {
	Path       string
	Type       FileType
	Size       int64
	Mode       uint32 // permission bits including setuid, setgid and sticky (07777)
	UID, GID   uint32
	Mtime      int64 // nanoseconds since the Unix epoch
	Ctime      int64 // nanoseconds since the Unix epoch
	Inode      uint64
	Dev        uint64
	Nlink      uint64
	LinkTarget string  // symlinks only; never followed
	Xattrs     []Xattr // sorted by name, ACL xattrs excluded
	ACL        string  // canonical text form, "" when the entry has no extended ACL
	Content    Digest  // regular files only, when the rule asks for content
	// Rdev is the device a character or block device node refers to
	// (st_rdev). It is nil for every other type, and for a device node
	// whose number was not recorded: baselines of format version 1 did
	// not record it, and Diff compares it only when the old entry has it.
	Rdev *DevNumber
}

// DevNumber is a device number split into its major (driver) and minor
// (instance) parts, as Linux reports them (unix.Major, unix.Minor). A
// /dev/sda node turned into /dev/mem keeps its type, mode and owner: only
// this number tells.
type DevNumber struct {
	Major, Minor uint32
}

// String formats the number as "major:minor", as ls and /proc do.
func (d DevNumber) String() string { return fmt.Sprintf("%d:%d", d.Major, d.Minor) }

// ParseDevNumber is the inverse of DevNumber.String.
func ParseDevNumber(s string) (DevNumber, error) {
	maj, min, ok := strings.Cut(s, ":")
	a, err1 := strconv.ParseUint(maj, 10, 32)
	b, err2 := strconv.ParseUint(min, 10, 32)
	if !ok || err1 != nil || err2 != nil {
		return DevNumber{}, fmt.Errorf("device number %q: want major:minor", s)
	}
	return DevNumber{Major: uint32(a), Minor: uint32(b)}, nil
}

// RdevString returns the entry's device number as "major:minor", or ""
// when it has none.
func (e *Entry) RdevString() string {
	if e.Rdev == nil {
		return ""
	}
	return e.Rdev.String()
}

// Fingerprint is the cheap part of an entry that changes whenever content
// may have changed. A forged mtime (touch -r) still moves ctime, and a
// replaced file moves the inode, so equal fingerprints let a check skip
// re-hashing.
type Fingerprint struct {
	Size  int64
	Mtime int64
	Ctime int64
	Inode uint64
	Dev   uint64
}

// Fingerprint returns the entry's fingerprint.
func (e *Entry) Fingerprint() Fingerprint {
	return Fingerprint{Size: e.Size, Mtime: e.Mtime, Ctime: e.Ctime, Inode: e.Inode, Dev: e.Dev}
}

// Xattr returns the value of the named extended attribute.
func (e *Entry) Xattr(name string) ([]byte, bool) {
	i, ok := slices.BinarySearchFunc(e.Xattrs, name, func(x Xattr, n string) int { return strings.Compare(x.Name, n) })
	if !ok {
		return nil, false
	}
	return e.Xattrs[i].Value, true
}

// ModeString formats the permission bits as four octal digits.
func (e *Entry) ModeString() string { return fmt.Sprintf("%04o", e.Mode&0o7777) }

// ComparePaths orders paths the way a depth-first walk with sorted
// directory listings visits them: component by component, bytewise. It is
// plain bytewise order except that the separator sorts before every other
// byte, so "/a/b/c" comes before "/a/b!" just as the walk descends into
// "/a/b" before it reaches "/a/b!". Baselines are stored in this order so a
// check can merge the walk with the baseline in one streaming pass.
func ComparePaths(a, b string) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		ca, cb := a[i], b[i]
		if ca == cb {
			continue
		}
		if ca == '/' {
			return -1
		}
		if cb == '/' {
			return 1
		}
		if ca < cb {
			return -1
		}
		return 1
	}
	switch {
	case len(a) < len(b):
		return -1
	case len(a) > len(b):
		return 1
	}
	return 0
}

// IsWithin reports whether path is root or lies below it.
func IsWithin(path, root string) bool {
	if root == "/" {
		return strings.HasPrefix(path, "/")
	}
	return path == root || (strings.HasPrefix(path, root) && path[len(root)] == '/')
}
