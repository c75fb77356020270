package fsys

import (
	"encoding/binary"
	"errors"
	"testing"
)

// aclBytes encodes entries of (tag, perm, id) in the kernel's xattr format.
func aclBytes(version uint32, entries ...[3]uint32) []byte {
	b := binary.LittleEndian.AppendUint32(nil, version)
	for _, e := range entries {
		b = binary.LittleEndian.AppendUint16(b, uint16(e[0]))
		b = binary.LittleEndian.AppendUint16(b, uint16(e[1]))
		b = binary.LittleEndian.AppendUint32(b, e[2])
	}
	return b
}

const undef = aclUndefinedID

func TestDecodeACL(t *testing.T) {
	minimal := aclBytes(2, [3]uint32{aclUserObj, 6, undef}, [3]uint32{aclGroupObj, 4, undef}, [3]uint32{aclOther, 4, undef})
	extended := aclBytes(2,
		[3]uint32{aclUserObj, 6, undef},
		[3]uint32{aclUser, 4, 1000},
		[3]uint32{aclGroupObj, 4, undef},
		[3]uint32{aclMask, 4, undef},
		[3]uint32{aclOther, 4, undef},
	)
	// Same entries in a scrambled order, with a second named user.
	scrambled := aclBytes(2,
		[3]uint32{aclOther, 0, undef},
		[3]uint32{aclUser, 7, 2000},
		[3]uint32{aclMask, 7, undef},
		[3]uint32{aclGroup, 5, 10},
		[3]uint32{aclUser, 1, 3},
		[3]uint32{aclGroupObj, 5, undef},
		[3]uint32{aclUserObj, 7, undef},
	)
	dflt := aclBytes(2,
		[3]uint32{aclUserObj, 7, undef},
		[3]uint32{aclUser, 5, 1000},
		[3]uint32{aclGroupObj, 5, undef},
		[3]uint32{aclMask, 5, undef},
		[3]uint32{aclOther, 5, undef},
	)
	tests := []struct {
		name         string
		access, dflt []byte
		want         string
		wantErr      bool
	}{
		{name: "none", want: ""},
		{name: "minimal", access: minimal, want: ""},
		{name: "extended", access: extended, want: "user::rw-,user:1000:r--,group::r--,mask::r--,other::r--"},
		{name: "scrambled", access: scrambled, want: "user::rwx,user:3:--x,user:2000:rwx,group::r-x,group:10:r-x,mask::rwx,other::---"},
		{name: "default only", dflt: dflt, want: "default:user::rwx,default:user:1000:r-x,default:group::r-x,default:mask::r-x,default:other::r-x"},
		{name: "minimal access and default", access: minimal, dflt: minimal, want: "default:user::rw-,default:group::r--,default:other::r--"},
		{name: "both", access: extended, dflt: dflt, want: "user::rw-,user:1000:r--,group::r--,mask::r--,other::r--,default:user::rwx,default:user:1000:r-x,default:group::r-x,default:mask::r-x,default:other::r-x"},
		{name: "header only", access: aclBytes(2), want: ""},
		{name: "bad version", access: aclBytes(1, [3]uint32{aclUserObj, 6, undef}), wantErr: true},
		{name: "bad tag", access: aclBytes(2, [3]uint32{0x40, 6, undef}), wantErr: true},
		{name: "bad perm", access: aclBytes(2, [3]uint32{aclUserObj, 8, undef}), wantErr: true},
		{name: "truncated", access: extended[:len(extended)-1], wantErr: true},
		{name: "short header", dflt: []byte{2, 0}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeACL(tt.access, tt.dflt)
			if tt.wantErr {
				if !errors.Is(err, errACL) {
					t.Fatalf("DecodeACL() = %q, %v; want an ACL error", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("DecodeACL() = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func FuzzDecodeACL(f *testing.F) {
	f.Add(aclBytes(2, [3]uint32{aclUserObj, 6, undef}, [3]uint32{aclUser, 4, 1000}, [3]uint32{aclMask, 4, undef}), []byte(nil))
	f.Fuzz(func(t *testing.T, access, dflt []byte) {
		s, err := DecodeACL(access, dflt)
		if err != nil {
			if s != "" || !errors.Is(err, errACL) {
				t.Fatalf("DecodeACL() = %q, %v", s, err)
			}
			return
		}
		// Decoding is deterministic and never yields an empty entry.
		if s2, _ := DecodeACL(access, dflt); s2 != s {
			t.Fatalf("not deterministic: %q vs %q", s, s2)
		}
		if len(s) > 0 && (s[0] == ',' || s[len(s)-1] == ',') {
			t.Fatalf("stray separator in %q", s)
		}
	})
}
