package baseline

import (
	"fmt"
	"slices"

	"github.com/vigilfim/vigil/internal/fim"
)

// Limits on entry fields. Linux caps paths at 4096 bytes, link targets at
// 4095, xattr names at 255 and xattr values at 64 KiB; the limits leave room
// for other systems while keeping a hostile record from sizing anything.
const (
	maxPath       = 64 << 10
	maxLinkTarget = 64 << 10
	maxXattrName  = 4 << 10
	maxXattrValue = 1 << 20
	maxACL        = 1 << 20
	maxDigest     = 64
)

// delta is the state entry records are encoded against: the previous
// entry in the same block. It starts from zero values in every block so
// that each block decodes on its own.
type delta struct {
	path  string
	mtime int64
	inode uint64
	dev   uint64
}

// validEntry checks what the format can't represent or what would break
// the canonical encoding.
func validEntry(e *fim.Entry) error {
	switch {
	case e.Path == "":
		return fmt.Errorf("empty path")
	case len(e.Path) > maxPath:
		return fmt.Errorf("path of %d bytes is over the limit of %d", len(e.Path), maxPath)
	case e.Type == fim.TypeUnknown || e.Type > fim.TypeBlockDev:
		return fmt.Errorf("invalid file type %d", e.Type)
	case len(e.LinkTarget) > maxLinkTarget:
		return fmt.Errorf("link target of %d bytes is over the limit of %d", len(e.LinkTarget), maxLinkTarget)
	case len(e.ACL) > maxACL:
		return fmt.Errorf("ACL of %d bytes is over the limit of %d", len(e.ACL), maxACL)
	case e.Rdev != nil && !e.Type.IsDevice():
		return fmt.Errorf("device number on a %s", e.Type)
	}
	if err := validDigest(e.Content); err != nil {
		return err
	}
	for i, x := range e.Xattrs {
		switch {
		case len(x.Name) == 0 || len(x.Name) > maxXattrName:
			return fmt.Errorf("xattr name of %d bytes (want 1 to %d)", len(x.Name), maxXattrName)
		case len(x.Value) > maxXattrValue:
			return fmt.Errorf("xattr %q value of %d bytes is over the limit of %d", x.Name, len(x.Value), maxXattrValue)
		case i > 0 && e.Xattrs[i-1].Name >= x.Name:
			return fmt.Errorf("xattrs not sorted by name or duplicated: %q after %q", x.Name, e.Xattrs[i-1].Name)
		}
	}
	return nil
}

func validDigest(d fim.Digest) error {
	switch d.Alg {
	case fim.HashNone:
		if len(d.Sum) != 0 {
			return fmt.Errorf("digest bytes without a hash algorithm")
		}
	case fim.SHA256, fim.BLAKE3:
		if len(d.Sum) != d.Alg.Size() {
			return fmt.Errorf("%s digest of %d bytes, want %d", d.Alg, len(d.Sum), d.Alg.Size())
		}
	default:
		return fmt.Errorf("unknown hash algorithm %d", d.Alg)
	}
	return nil
}

// sharedPrefix returns the length of the common prefix of a and b.
func sharedPrefix(a, b string) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// Values of the rdev presence byte (entry field 19, format version 2).
const (
	rdevUnknown = 0 // a device whose number was not recorded (kept from a version-1 baseline)
	rdevKnown   = 1 // followed by uvarint major, uvarint minor
)

// appendEntry appends the record for e (already validated) to b in the
// given format version.
func appendEntry(b []byte, d *delta, e *fim.Entry, tag uint32, version int) []byte {
	shared := sharedPrefix(d.path, e.Path)
	b = appendUvarint(b, uint64(shared))
	b = appendString(b, e.Path[shared:])
	b = append(b, byte(e.Type))
	b = appendUvarint(b, uint64(tag))
	b = appendUvarint(b, uint64(e.Mode))
	b = appendUvarint(b, uint64(e.UID))
	b = appendUvarint(b, uint64(e.GID))
	b = appendVarint(b, e.Size)
	b = appendVarint(b, e.Mtime-d.mtime)
	b = appendVarint(b, e.Ctime-e.Mtime)
	b = appendVarint(b, int64(e.Inode-d.inode))
	b = appendVarint(b, int64(e.Dev-d.dev))
	b = appendUvarint(b, e.Nlink)
	b = append(b, byte(e.Content.Alg))
	if e.Content.Alg != fim.HashNone {
		b = appendBytes(b, e.Content.Sum)
	}
	b = appendString(b, e.LinkTarget)
	b = appendString(b, e.ACL)
	b = appendUvarint(b, uint64(len(e.Xattrs)))
	for _, x := range e.Xattrs {
		b = appendString(b, x.Name)
		b = appendBytes(b, x.Value)
	}
	if version >= 2 && e.Type.IsDevice() {
		if e.Rdev == nil {
			b = append(b, rdevUnknown)
		} else {
			b = append(b, rdevKnown)
			b = appendUvarint(b, uint64(e.Rdev.Major))
			b = appendUvarint(b, uint64(e.Rdev.Minor))
		}
	}
	d.path, d.mtime, d.inode, d.dev = e.Path, e.Mtime, e.Inode, e.Dev
	return b
}

// decodeEntry decodes one record of the given format version from c.
// Arithmetic on deltas wraps exactly as the encoder's did, so every int64
// and uint64 round-trips.
func decodeEntry(c *cursor, d *delta, version int) (*fim.Entry, uint32, error) {
	shared := c.uvarint()
	suffix := c.bytes(maxPath, "path")
	if c.err != nil {
		return nil, 0, c.err
	}
	if shared > uint64(len(d.path)) {
		return nil, 0, fmt.Errorf("path shares %d bytes with a previous path of %d", shared, len(d.path))
	}
	if shared+uint64(len(suffix)) > maxPath {
		return nil, 0, fmt.Errorf("path of %d bytes is over the limit of %d", shared+uint64(len(suffix)), maxPath)
	}
	e := &fim.Entry{Path: d.path[:shared] + string(suffix)}
	e.Type = fim.FileType(c.byte())
	tag := c.u32("tag")
	e.Mode = c.u32("mode")
	e.UID = c.u32("uid")
	e.GID = c.u32("gid")
	e.Size = c.varint()
	e.Mtime = d.mtime + c.varint()
	e.Ctime = e.Mtime + c.varint()
	e.Inode = d.inode + uint64(c.varint())
	e.Dev = d.dev + uint64(c.varint())
	e.Nlink = c.uvarint()
	e.Content.Alg = fim.HashAlg(c.byte())
	if e.Content.Alg != fim.HashNone {
		e.Content.Sum = slices.Clone(c.bytes(maxDigest, "digest"))
	}
	e.LinkTarget = c.string(maxLinkTarget, "link target")
	e.ACL = c.string(maxACL, "ACL")
	if n := c.count("xattr"); n > 0 {
		e.Xattrs = make([]fim.Xattr, n)
		for i := range e.Xattrs {
			e.Xattrs[i].Name = c.string(maxXattrName, "xattr name")
			e.Xattrs[i].Value = slices.Clone(c.bytes(maxXattrValue, "xattr value"))
			if e.Xattrs[i].Value == nil {
				e.Xattrs[i].Value = []byte{}
			}
		}
	}
	// Version 1 had no field 19: its device entries decode without a
	// number, which fim.Diff takes as "not recorded".
	if version >= 2 && e.Type.IsDevice() {
		switch has := c.byte(); has {
		case rdevUnknown:
		case rdevKnown:
			e.Rdev = &fim.DevNumber{Major: c.u32("rdev major"), Minor: c.u32("rdev minor")}
		default:
			if c.err == nil {
				c.err = fmt.Errorf("rdev presence byte %d, want 0 or 1", has)
			}
		}
	}
	if c.err != nil {
		return nil, 0, c.err
	}
	if err := validEntry(e); err != nil {
		return nil, 0, err
	}
	d.path, d.mtime, d.inode, d.dev = e.Path, e.Mtime, e.Inode, e.Dev
	return e, tag, nil
}
