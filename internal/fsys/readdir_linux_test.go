package fsys

import (
	"encoding/binary"
	"testing"
)

// dirent encodes one linux_dirent64 record padded to 8 bytes.
func dirent(ino uint64, typ uint8, name string) []byte {
	reclen := (19 + len(name) + 1 + 7) &^ 7
	b := make([]byte, reclen)
	binary.NativeEndian.PutUint64(b, ino)
	binary.NativeEndian.PutUint16(b[16:], uint16(reclen))
	b[18] = typ
	copy(b[19:], name)
	return b
}

func FuzzParseDirents(f *testing.F) {
	var seed []byte
	for _, n := range []string{".", "..", "file", "dir", "new\nline"} {
		seed = append(seed, dirent(1, 8, n)...)
	}
	f.Add(seed)
	f.Add(seed[:len(seed)-3])
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, e := range parseDirents(b) {
			if e.Name == "" || e.Name == "." || e.Name == ".." {
				t.Fatalf("bad name %q", e.Name)
			}
			for i := 0; i < len(e.Name); i++ {
				if e.Name[i] == 0 {
					t.Fatalf("NUL in name %q", e.Name)
				}
			}
		}
	})
}

func TestParseDirents(t *testing.T) {
	var b []byte
	for _, n := range []string{".", "..", "b", "a", "\xff"} {
		b = append(b, dirent(7, 4, n)...)
	}
	got := parseDirents(b)
	if len(got) != 3 || got[0].Name != "a" || got[1].Name != "b" || got[2].Name != "\xff" {
		t.Fatalf("parseDirents = %+v", got)
	}
}
