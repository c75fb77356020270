package fsys

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// The extended attributes in which Linux stores POSIX ACLs. They are
// reported in Entry.ACL, decoded, rather than among the raw xattrs.
const (
	XattrACLAccess  = "system.posix_acl_access"
	XattrACLDefault = "system.posix_acl_default"
)

// Layout of the kernel's POSIX ACL xattr (include/uapi/linux/posix_acl_xattr.h):
// a little-endian u32 version, then entries of u16 tag, u16 perm, u32 id.
const (
	aclXattrVersion = 2
	aclHeaderSize   = 4
	aclEntrySize    = 8
	aclUndefinedID  = 0xffffffff

	aclUserObj  = 0x01
	aclUser     = 0x02
	aclGroupObj = 0x04
	aclGroup    = 0x08
	aclMask     = 0x10
	aclOther    = 0x20
)

// errACL is wrapped by every ACL decoding error.
var errACL = errors.New("malformed POSIX ACL")

type aclEntry struct {
	tag  uint16
	perm uint16
	id   uint32
}

// DecodeACL turns the raw values of the system.posix_acl_access and
// system.posix_acl_default xattrs (either may be nil) into Vigil's
// canonical text: entries in the order user::, user:ID:, group::,
// group:ID:, mask::, other:: with numeric IDs (names can change under an
// unchanged file), joined by commas, default entries prefixed "default:".
// An access ACL that holds only the three entries mirrored by the mode bits
// is not reported, so a file without an extended ACL yields "".
func DecodeACL(access, def []byte) (string, error) {
	acc, err := parseACL(access)
	if err != nil {
		return "", fmt.Errorf("decode %s: %w", XattrACLAccess, err)
	}
	dfl, err := parseACL(def)
	if err != nil {
		return "", fmt.Errorf("decode %s: %w", XattrACLDefault, err)
	}
	var b strings.Builder
	if !isMinimal(acc) {
		formatACL(&b, "", acc)
	}
	formatACL(&b, "default:", dfl)
	return b.String(), nil
}

func parseACL(b []byte) ([]aclEntry, error) {
	if len(b) == 0 {
		return nil, nil
	}
	if len(b) < aclHeaderSize || (len(b)-aclHeaderSize)%aclEntrySize != 0 {
		return nil, fmt.Errorf("%w: length %d", errACL, len(b))
	}
	if v := binary.LittleEndian.Uint32(b); v != aclXattrVersion {
		return nil, fmt.Errorf("%w: version %d", errACL, v)
	}
	b = b[aclHeaderSize:]
	out := make([]aclEntry, 0, len(b)/aclEntrySize)
	for ; len(b) > 0; b = b[aclEntrySize:] {
		e := aclEntry{
			tag:  binary.LittleEndian.Uint16(b),
			perm: binary.LittleEndian.Uint16(b[2:]),
			id:   binary.LittleEndian.Uint32(b[4:]),
		}
		switch e.tag {
		case aclUserObj, aclGroupObj, aclMask, aclOther:
			e.id = aclUndefinedID // meaningless for these tags
		case aclUser, aclGroup:
		default:
			return nil, fmt.Errorf("%w: tag %#x", errACL, e.tag)
		}
		if e.perm&^7 != 0 {
			return nil, fmt.Errorf("%w: permission %#x", errACL, e.perm)
		}
		out = append(out, e)
	}
	// The kernel stores entries sorted by tag then id; sort anyway so the
	// text is canonical whatever wrote the xattr.
	slices.SortStableFunc(out, func(x, y aclEntry) int {
		if x.tag != y.tag {
			return int(x.tag) - int(y.tag)
		}
		switch {
		case x.id < y.id:
			return -1
		case x.id > y.id:
			return 1
		}
		return 0
	})
	return out, nil
}

func isMinimal(acl []aclEntry) bool {
	for _, e := range acl {
		if e.tag != aclUserObj && e.tag != aclGroupObj && e.tag != aclOther {
			return false
		}
	}
	return true
}

func formatACL(b *strings.Builder, prefix string, acl []aclEntry) {
	for _, e := range acl {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(prefix)
		switch e.tag {
		case aclUserObj:
			b.WriteString("user::")
		case aclUser:
			b.WriteString("user:" + strconv.FormatUint(uint64(e.id), 10) + ":")
		case aclGroupObj:
			b.WriteString("group::")
		case aclGroup:
			b.WriteString("group:" + strconv.FormatUint(uint64(e.id), 10) + ":")
		case aclMask:
			b.WriteString("mask::")
		case aclOther:
			b.WriteString("other::")
		}
		b.WriteString(permText(e.perm))
	}
}

func permText(p uint16) string {
	r := []byte("---")
	if p&4 != 0 {
		r[0] = 'r'
	}
	if p&2 != 0 {
		r[1] = 'w'
	}
	if p&1 != 0 {
		r[2] = 'x'
	}
	return string(r)
}
