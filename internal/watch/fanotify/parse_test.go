package fanotify

import (
	"encoding/binary"
	"testing"
)

// encode builds a fanotify FID-mode event as the kernel lays it out.
func encode(mask uint64, pid int32, infos ...[]byte) []byte {
	var body []byte
	for _, in := range infos {
		body = append(body, in...)
	}
	b := make([]byte, metaLen)
	binary.NativeEndian.PutUint32(b[0:], uint32(metaLen+len(body)))
	b[4] = metaVersion
	binary.NativeEndian.PutUint16(b[6:], metaLen)
	binary.NativeEndian.PutUint64(b[8:], mask)
	binary.NativeEndian.PutUint32(b[16:], ^uint32(0)) // FAN_NOFD
	binary.NativeEndian.PutUint32(b[20:], uint32(pid))
	return append(b, body...)
}

func fidInfo(typ byte, fh []byte, name string) []byte {
	rec := make([]byte, infoHdrLen+fsidLen+fhHdrLen)
	rec[0] = typ
	copy(rec[infoHdrLen:], "FSIDFSID")
	binary.NativeEndian.PutUint32(rec[infoHdrLen+fsidLen:], uint32(len(fh)))
	binary.NativeEndian.PutUint32(rec[infoHdrLen+fsidLen+4:], 1)
	rec = append(rec, fh...)
	if typ != infoFID && typ != infoDFID {
		rec = append(rec, name...)
		rec = append(rec, 0)
	}
	for len(rec)%4 != 0 { // the kernel pads records to 4 bytes
		rec = append(rec, 0)
	}
	binary.NativeEndian.PutUint16(rec[2:], uint16(len(rec)))
	return rec
}

func TestParseEvents(t *testing.T) {
	tests := []struct {
		name    string
		buf     []byte
		want    []event
		wantErr bool
	}{
		{
			name: "create with target fid",
			buf:  encode(0x100, 42, fidInfo(infoDFIDName, []byte("DIRHANDL"), "file"), fidInfo(infoFID, []byte("CHILDHND"), "")),
			want: []event{{mask: 0x100, pid: 42, name: "file", dirOK: true, childOK: true}},
		},
		{
			name: "dfid without name",
			buf:  encode(0x4, 7, fidInfo(infoDFID, []byte("DIRHANDL"), "")),
			want: []event{{mask: 0x4, pid: 7, dirOK: true}},
		},
		{
			name: "two events",
			buf: append(encode(0x2, 1, fidInfo(infoDFIDName, []byte("D"), "a")),
				encode(0x8, 2, fidInfo(infoDFIDName, []byte("D"), "b"))...),
			want: []event{{mask: 0x2, pid: 1, name: "a", dirOK: true}, {mask: 0x8, pid: 2, name: "b", dirOK: true}},
		},
		{name: "overflow", buf: encode(0x4000, -1), want: []event{{mask: 0x4000, pid: -1}}},
		{name: "truncated metadata", buf: encode(0x2, 1)[:10], wantErr: true},
		{name: "event length past buffer", buf: encode(0x2, 1, fidInfo(infoDFIDName, []byte("D"), "a"))[:30], wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []event
			err := parseEvents(tt.buf, func(e event) { got = append(got, e) })
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d events, want %d", len(got), len(tt.want))
			}
			for i, w := range tt.want {
				g := got[i]
				if g.mask != w.mask || g.pid != w.pid || g.name != w.name || g.dirOK != w.dirOK || g.childOK != w.childOK {
					t.Errorf("event %d = %+v, want %+v", i, g, w)
				}
			}
		})
	}
}

func FuzzParseEvents(f *testing.F) {
	f.Add(encode(0x100, 42, fidInfo(infoDFIDName, []byte("DIRHANDL"), "file"), fidInfo(infoFID, []byte("CHILDHND"), "")))
	f.Add(encode(0x4000, -1))
	f.Fuzz(func(t *testing.T, b []byte) {
		n := 0
		_ = parseEvents(b, func(e event) {
			n++
			if len(e.dir.bytes) > maxHandle || len(e.child.bytes) > maxHandle {
				t.Fatalf("handle longer than MAX_HANDLE_SZ")
			}
		})
		if n > len(b)/metaLen {
			t.Fatalf("%d events from %d bytes", n, len(b))
		}
	})
}
