package fsys

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

func capBytes(magic uint32, words ...uint32) []byte {
	b := binary.LittleEndian.AppendUint32(nil, magic)
	for _, w := range words {
		b = binary.LittleEndian.AppendUint32(b, w)
	}
	return b
}

func TestCapabilityText(t *testing.T) {
	const (
		netAdmin = 1 << 12
		netRaw   = 1 << 13
		chown    = 1 << 0
	)
	tests := []struct {
		name    string
		value   []byte
		want    string
		wantErr bool
	}{
		{name: "v2 ep", value: capBytes(capRevision2|capFlagEffective, netAdmin|netRaw, 0, 0, 0), want: "cap_net_admin,cap_net_raw=ep"},
		{name: "v2 p", value: capBytes(capRevision2, netRaw, 0, 0, 0), want: "cap_net_raw=p"},
		{name: "v2 groups", value: capBytes(capRevision2|capFlagEffective, chown|netRaw, netAdmin, 0, 0), want: "cap_chown,cap_net_raw=ep cap_net_admin=ei"},
		{name: "v2 high caps", value: capBytes(capRevision2, 0, 0, 1<<(38-32)|1<<(39-32)|1<<(50-32), 0), want: "cap_perfmon,cap_bpf,50=p"},
		{name: "v1", value: capBytes(capRevision1|capFlagEffective, netRaw, 0), want: "cap_net_raw=ep"},
		{name: "v3 rootid", value: capBytes(capRevision3|capFlagEffective, netRaw, 0, 0, 0, 1000), want: "cap_net_raw=ep [rootid=1000]"},
		{name: "empty set", value: capBytes(capRevision2, 0, 0, 0, 0), want: "="},
		{name: "short", value: []byte{0, 0}, wantErr: true},
		{name: "v1 wrong length", value: capBytes(capRevision1, 0, 0, 0), wantErr: true},
		{name: "v2 wrong length", value: capBytes(capRevision2, 0, 0), wantErr: true},
		{name: "v3 wrong length", value: capBytes(capRevision3, 0, 0, 0, 0), wantErr: true},
		{name: "unknown revision", value: capBytes(0x04000000, 0, 0, 0, 0), wantErr: true},
		{name: "unknown flag", value: capBytes(capRevision2|0x2, 0, 0, 0, 0), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CapabilityText(tt.value)
			if tt.wantErr {
				if !errors.Is(err, errCapability) {
					t.Fatalf("CapabilityText() = %q, %v; want a capability error", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("CapabilityText() = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func FuzzCapabilityText(f *testing.F) {
	f.Add(capBytes(capRevision2|capFlagEffective, 1<<13, 0, 0, 0))
	f.Add(capBytes(capRevision3, 1, 2, 3, 4, 5))
	f.Fuzz(func(t *testing.T, value []byte) {
		s, err := CapabilityText(value)
		if err != nil {
			if !errors.Is(err, errCapability) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if s == "" || strings.Contains(s, ",,") || !strings.Contains(s, "=") {
			t.Fatalf("malformed text %q", s)
		}
	})
}
