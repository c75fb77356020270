package policy

import (
	"strings"

	"github.com/vigilfim/vigil/internal/fim"
)

// builtinSet is an attribute set every policy can name.
type builtinSet struct {
	name  string
	check fim.Check
	doc   string
}

const (
	permissionAttrs = fim.AttrSet(fim.AttrType) | fim.AttrSet(fim.AttrMode) | fim.AttrSet(fim.AttrUID) |
		fim.AttrSet(fim.AttrGID) | fim.AttrSet(fim.AttrACL) | fim.AttrSet(fim.AttrXattrs)
	// A device node has no content to hash; which device it opens (rdev)
	// is what stands for its content, so every set that compares content
	// compares rdev too. It only ever differs for devices.
	contentAttrs = fim.AttrSet(fim.AttrType) | fim.AttrSet(fim.AttrSize) | fim.AttrSet(fim.AttrContent) | fim.AttrSet(fim.AttrRdev)
)

// builtinSets lists the built-in attribute sets. Marshal names a rule's
// check by the first set in this order that equals it, so the order is
// part of the canonical form: do not reorder, only append.
func builtinSets() []builtinSet {
	return []builtinSet{
		{"everything", fim.Check{Attrs: fim.AllAttrs},
			"every attribute Vigil records, including the file system's device number"},
		// dev is left out because device numbers of some file systems
		// (btrfs subvolumes, LVM, network mounts) change across reboots
		// without anything on them changing.
		{"static", fim.Check{Attrs: fim.AllAttrs.Without(fim.AttrDev)},
			"everything but dev: files that should never change, not even be touched"},
		// Package managers replace files (new inode, new times) on every
		// upgrade, so inode and times add noise, not evidence, for
		// binaries; content and permissions are what matter.
		{"binaries", fim.Check{Attrs: permissionAttrs | contentAttrs | fim.AttrSet(fim.AttrLinkTarget)},
			"permissions + content + link_target: executables, libraries, configuration"},
		{"permissions", fim.Check{Attrs: permissionAttrs},
			"type, mode, uid, gid, acl, xattrs"},
		{"content", fim.Check{Attrs: contentAttrs},
			"type, size, content, rdev"},
		// Logs may grow; a shrink or a rewritten prefix is what tampering
		// looks like (fim.Diff). Times move with every append.
		{"growing", fim.Check{Attrs: permissionAttrs | contentAttrs, Growing: true},
			"permissions + content, where size may grow and the old content must stay a prefix: logs"},
	}
}

func lookupBuiltin(name string) (fim.Check, bool) {
	for _, s := range builtinSets() {
		if s.name == name {
			return s.check, true
		}
	}
	return fim.Check{}, false
}

func builtinNames() string {
	var names []string
	for _, s := range builtinSets() {
		names = append(names, s.name)
	}
	return strings.Join(names, ", ")
}

// canonicalAttributes returns the canonical spelling of a check for
// Marshal: a built-in set name when one matches, otherwise a list of
// attribute names, led by "+growing" and its removals for growing checks.
func canonicalAttributes(c fim.Check) (set string, items []string) {
	for _, s := range builtinSets() {
		if s.check == c {
			return s.name, nil
		}
	}
	if !c.Growing {
		return "", c.Attrs.Names()
	}
	g, _ := lookupBuiltin("growing")
	items = []string{"+growing"}
	for _, a := range g.Attrs.Attrs() {
		if !c.Attrs.Has(a) {
			items = append(items, "-"+a.String())
		}
	}
	for _, a := range c.Attrs.Attrs() {
		if !g.Attrs.Has(a) {
			items = append(items, a.String())
		}
	}
	return "", items
}
