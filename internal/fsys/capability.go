package fsys

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// XattrCapability is the extended attribute holding a file's capabilities.
const XattrCapability = "security.capability"

// Layout of struct vfs_ns_cap_data (include/uapi/linux/capability.h).
const (
	capRevisionMask  = 0xff000000
	capFlagEffective = 0x000001
	capRevision1     = 0x01000000 // 32 capabilities
	capRevision2     = 0x02000000 // 64 capabilities
	capRevision3     = 0x03000000 // 64 capabilities and a namespace root uid
	capSize1         = 4 + 1*8
	capSize2         = 4 + 2*8
	capSize3         = capSize2 + 4
)

// capNames are the capability names by number, as libcap spells them.
var capNames = [...]string{
	"cap_chown", "cap_dac_override", "cap_dac_read_search", "cap_fowner",
	"cap_fsetid", "cap_kill", "cap_setgid", "cap_setuid", "cap_setpcap",
	"cap_linux_immutable", "cap_net_bind_service", "cap_net_broadcast",
	"cap_net_admin", "cap_net_raw", "cap_ipc_lock", "cap_ipc_owner",
	"cap_sys_module", "cap_sys_rawio", "cap_sys_chroot", "cap_sys_ptrace",
	"cap_sys_pacct", "cap_sys_admin", "cap_sys_boot", "cap_sys_nice",
	"cap_sys_resource", "cap_sys_time", "cap_sys_tty_config", "cap_mknod",
	"cap_lease", "cap_audit_write", "cap_audit_control", "cap_setfcap",
	"cap_mac_override", "cap_mac_admin", "cap_syslog", "cap_wake_alarm",
	"cap_block_suspend", "cap_audit_read", "cap_perfmon", "cap_bpf",
	"cap_checkpoint_restore",
}

// errCapability is wrapped by every capability decoding error.
var errCapability = errors.New("malformed security.capability")

// CapabilityText decodes the value of the security.capability xattr
// (revisions 1, 2 and 3) into libcap-style text such as
// "cap_net_admin,cap_net_raw=ep", for people reading reports; baselines
// keep the raw bytes. Capabilities sharing the same flags are grouped,
// groups are ordered by their lowest capability number, and the effective
// flag (a single bit in the file format) applies to every permitted or
// inheritable capability, as the kernel applies it at exec. A revision 3
// value names its user namespace root as " [rootid=N]". Unknown capability
// numbers are printed as numbers.
func CapabilityText(value []byte) (string, error) {
	if len(value) < 4 {
		return "", fmt.Errorf("decode %s: %w: length %d", XattrCapability, errCapability, len(value))
	}
	magic := binary.LittleEndian.Uint32(value)
	var words int
	switch rev := magic & capRevisionMask; rev {
	case capRevision1:
		words = 1
		if len(value) != capSize1 {
			return "", fmt.Errorf("decode %s: %w: revision 1 with length %d", XattrCapability, errCapability, len(value))
		}
	case capRevision2:
		words = 2
		if len(value) != capSize2 {
			return "", fmt.Errorf("decode %s: %w: revision 2 with length %d", XattrCapability, errCapability, len(value))
		}
	case capRevision3:
		words = 2
		if len(value) != capSize3 {
			return "", fmt.Errorf("decode %s: %w: revision 3 with length %d", XattrCapability, errCapability, len(value))
		}
	default:
		return "", fmt.Errorf("decode %s: %w: revision %#x", XattrCapability, errCapability, rev>>24)
	}
	if magic&^(capRevisionMask|capFlagEffective) != 0 {
		return "", fmt.Errorf("decode %s: %w: flags %#x", XattrCapability, errCapability, magic&^capRevisionMask)
	}
	var permitted, inheritable uint64
	for i := range words {
		permitted |= uint64(binary.LittleEndian.Uint32(value[4+8*i:])) << (32 * i)
		inheritable |= uint64(binary.LittleEndian.Uint32(value[8+8*i:])) << (32 * i)
	}
	var effective uint64
	if magic&capFlagEffective != 0 {
		effective = permitted | inheritable
	}

	// Group capabilities by their flag combination, in order of first
	// appearance, which is the order of the lowest capability number.
	type group struct {
		flags string
		names []string
	}
	var groups []*group
	byFlags := map[string]*group{}
	for c := range 64 {
		bit := uint64(1) << c
		var flags string
		if effective&bit != 0 {
			flags += "e"
		}
		if inheritable&bit != 0 {
			flags += "i"
		}
		if permitted&bit != 0 {
			flags += "p"
		}
		if flags == "" {
			continue
		}
		g := byFlags[flags]
		if g == nil {
			g = &group{flags: flags}
			byFlags[flags] = g
			groups = append(groups, g)
		}
		g.names = append(g.names, capName(c))
	}
	var b strings.Builder
	if len(groups) == 0 {
		b.WriteByte('=') // libcap's text for the empty set
	}
	for i, g := range groups {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strings.Join(g.names, ","))
		b.WriteByte('=')
		b.WriteString(g.flags)
	}
	if magic&capRevisionMask == capRevision3 {
		b.WriteString(" [rootid=" + strconv.FormatUint(uint64(binary.LittleEndian.Uint32(value[capSize2:])), 10) + "]")
	}
	return b.String(), nil
}

func capName(c int) string {
	if c < len(capNames) {
		return capNames[c]
	}
	return strconv.Itoa(c)
}
