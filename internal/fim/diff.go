package fim

import (
	"bytes"
	"slices"
)

// Check says which attributes of an entry are compared, and how.
type Check struct {
	// Attrs are the attributes compared.
	Attrs AttrSet
	// Growing marks files that may only grow, such as logs: size may
	// increase, and the content recorded in the baseline must still be the
	// prefix of the file (New.PrefixContent), while mtime and ctime are
	// expected to move.
	Growing bool
}

// Kind is the kind of a change.
type Kind uint8

// Change kinds.
const (
	Added Kind = iota + 1
	Removed
	Modified
)

// String returns the kind's name as used in JSON.
func (k Kind) String() string {
	switch k {
	case Added:
		return "added"
	case Removed:
		return "removed"
	case Modified:
		return "modified"
	}
	return "unknown"
}

// ParseKind is the inverse of Kind.String.
func ParseKind(s string) (Kind, bool) {
	switch s {
	case "added":
		return Added, true
	case "removed":
		return Removed, true
	case "modified":
		return Modified, true
	}
	return 0, false
}

// Change is one difference between a baseline and the file system.
type Change struct {
	Path    string
	Kind    Kind
	Changed AttrSet // for Modified: the attributes that differ
	Old     *Entry  // nil for Added
	New     *Entry  // nil for Removed
}

// Compare returns the change from old to new, and false if there is none
// under the check. Either entry may be nil (added or removed). For growing
// files, prefix is the digest of new's first old.Size bytes, computed with
// old's algorithm; it is ignored otherwise.
func Compare(old, new *Entry, c Check, prefix Digest) (Change, bool) {
	switch {
	case old == nil && new == nil:
		return Change{}, false
	case old == nil:
		return Change{Path: new.Path, Kind: Added, New: new}, true
	case new == nil:
		return Change{Path: old.Path, Kind: Removed, Old: old}, true
	}
	d := Diff(old, new, c, prefix)
	if d == 0 {
		return Change{}, false
	}
	return Change{Path: new.Path, Kind: Modified, Changed: d, Old: old, New: new}, true
}

// Diff returns the attributes under the check that differ between old and
// new. A change of type masks nothing: the other attributes are compared
// too, so a file replaced by a symlink reports every attribute that moved.
func Diff(old, new *Entry, c Check, prefix Digest) AttrSet {
	var d AttrSet
	a := c.Attrs
	set := func(attr Attr, differs bool) {
		if a.Has(attr) && differs {
			d = d.With(attr)
		}
	}
	set(AttrType, old.Type != new.Type)
	set(AttrMode, old.Mode != new.Mode)
	set(AttrUID, old.UID != new.UID)
	set(AttrGID, old.GID != new.GID)
	set(AttrInode, old.Inode != new.Inode)
	set(AttrDev, old.Dev != new.Dev)
	set(AttrNlink, old.Nlink != new.Nlink && old.Type != TypeDir)
	set(AttrLinkTarget, old.LinkTarget != new.LinkTarget)
	set(AttrXattrs, !xattrsEqual(old.Xattrs, new.Xattrs))
	set(AttrACL, old.ACL != new.ACL)
	// An old device entry without a number comes from a version-1
	// baseline, which did not record it: nothing is known to compare, and
	// the next accept records it. Any other old entry has a known number
	// (none, for non-devices), so a file replaced by a device node, or a
	// node by another, shows as an rdev change.
	if old.Rdev != nil || !old.Type.IsDevice() {
		set(AttrRdev, !rdevEqual(old.Rdev, new.Rdev))
	}
	if c.Growing && old.Type == TypeFile && new.Type == TypeFile {
		set(AttrSize, new.Size < old.Size)
		if new.Size >= old.Size && !old.Content.IsZero() {
			set(AttrContent, !prefix.Equal(old.Content))
		}
		return d
	}
	set(AttrSize, old.Size != new.Size && old.Type != TypeDir)
	set(AttrMtime, old.Mtime != new.Mtime)
	set(AttrCtime, old.Ctime != new.Ctime)
	// A missing digest on either side means content was not asked for (or
	// could not be read, which the scan reports separately): only compare
	// digests that exist, but a regular file turning into something without
	// content is still a content change.
	if !old.Content.IsZero() || !new.Content.IsZero() {
		set(AttrContent, !old.Content.Equal(new.Content))
	}
	return d
}

func rdevEqual(a, b *DevNumber) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func xattrsEqual(a, b []Xattr) bool {
	return slices.EqualFunc(a, b, func(x, y Xattr) bool { return x.Name == y.Name && bytes.Equal(x.Value, y.Value) })
}
