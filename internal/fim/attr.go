package fim

import (
	"fmt"
	"math/bits"
	"strings"
)

// Attr names one attribute of an entry that can be compared. The names
// returned by String are part of the JSON change record contract.
type Attr uint32

// The attributes Vigil records. Their order is the order in which changed
// attributes are listed in reports.
const (
	AttrType Attr = 1 << iota
	AttrSize
	AttrMode
	AttrUID
	AttrGID
	AttrMtime
	AttrCtime
	AttrInode
	AttrNlink
	AttrLinkTarget
	AttrXattrs
	AttrACL
	AttrContent
	AttrDev
	// AttrRdev is the device number of a character or block device node.
	AttrRdev
	attrEnd
)

var attrNames = [...]string{
	"type", "size", "mode", "uid", "gid", "mtime", "ctime", "inode",
	"nlink", "link_target", "xattrs", "acl", "content", "dev", "rdev",
}

// String returns the attribute's name as used in policies and JSON.
func (a Attr) String() string {
	if a == 0 || a >= attrEnd || a&(a-1) != 0 {
		return fmt.Sprintf("attr(%#x)", uint32(a))
	}
	return attrNames[bits.TrailingZeros32(uint32(a))]
}

// ParseAttr returns the attribute with the given name.
func ParseAttr(name string) (Attr, error) {
	for i, n := range attrNames {
		if n == name {
			return Attr(1) << i, nil
		}
	}
	return 0, fmt.Errorf("unknown attribute %q (known: %s)", name, strings.Join(attrNames[:], ", "))
}

// AttrSet is a set of attributes.
type AttrSet uint32

// AllAttrs is every attribute Vigil records. It is the default when no
// policy narrows the check.
const AllAttrs = AttrSet(attrEnd - 1)

// Has reports whether a is in the set.
func (s AttrSet) Has(a Attr) bool { return uint32(s)&uint32(a) != 0 }

// With returns the set with a added.
func (s AttrSet) With(a Attr) AttrSet { return s | AttrSet(a) }

// Without returns the set with a removed.
func (s AttrSet) Without(a Attr) AttrSet { return s &^ AttrSet(a) }

// Attrs lists the attributes in the set in report order.
func (s AttrSet) Attrs() []Attr {
	out := make([]Attr, 0, bits.OnesCount32(uint32(s)))
	for a := Attr(1); a < attrEnd; a <<= 1 {
		if s.Has(a) {
			out = append(out, a)
		}
	}
	return out
}

// Names lists the names of the attributes in the set in report order.
func (s AttrSet) Names() []string {
	attrs := s.Attrs()
	out := make([]string, len(attrs))
	for i, a := range attrs {
		out[i] = a.String()
	}
	return out
}

// String joins the names with commas.
func (s AttrSet) String() string { return strings.Join(s.Names(), ",") }
