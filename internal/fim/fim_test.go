package fim

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestComparePathsIsWalkOrder(t *testing.T) {
	// The order a depth-first walk with bytewise-sorted listings produces.
	walk := []string{"/a", "/a/b", "/a/b/c", "/a/b!", "/a/b.c", "/a b", "/a!", "/a\xff", "/b"}
	got := slices.Clone(walk)
	slices.Reverse(got)
	slices.SortFunc(got, ComparePaths)
	if !slices.Equal(got, walk) {
		t.Fatalf("sorted = %q, want %q", got, walk)
	}
	for _, p := range walk {
		if ComparePaths(p, p) != 0 {
			t.Errorf("ComparePaths(%q, itself) != 0", p)
		}
	}
}

func TestIsWithin(t *testing.T) {
	for _, tc := range []struct {
		path, root string
		want       bool
	}{
		{"/etc", "/etc", true},
		{"/etc/ssh", "/etc", true},
		{"/etcx", "/etc", false},
		{"/etc", "/", true},
		{"/", "/", true},
		{"/et", "/etc", false},
	} {
		if got := IsWithin(tc.path, tc.root); got != tc.want {
			t.Errorf("IsWithin(%q, %q) = %v, want %v", tc.path, tc.root, got, tc.want)
		}
	}
}

func TestAttrNames(t *testing.T) {
	want := "type,size,mode,uid,gid,mtime,ctime,inode,nlink,link_target,xattrs,acl,content,dev,rdev"
	if got := AllAttrs.String(); got != want {
		t.Fatalf("AllAttrs = %s, want %s", got, want)
	}
	for _, n := range strings.Split(want, ",") {
		a, err := ParseAttr(n)
		if err != nil || a.String() != n {
			t.Errorf("ParseAttr(%q) = %v, %v", n, a, err)
		}
	}
	if _, err := ParseAttr("atime"); err == nil {
		t.Error("ParseAttr(atime) succeeded; atime is deliberately not an attribute")
	}
}

func TestParseHashAlgRefusesWeakHashes(t *testing.T) {
	for _, n := range []string{"md5", "sha1", "SHA-1"} {
		if _, err := ParseHashAlg(n); err == nil || !strings.Contains(err.Error(), "not collision resistant") {
			t.Errorf("ParseHashAlg(%q) err = %v", n, err)
		}
	}
}

func file(path string) *Entry {
	return &Entry{
		Path: path, Type: TypeFile, Size: 10, Mode: 0o644, UID: 0, GID: 0,
		Mtime: 1e18, Ctime: 1e18, Inode: 7, Dev: 2049, Nlink: 1,
		Content: Digest{Alg: SHA256, Sum: make([]byte, 32)},
	}
}

func TestDiff(t *testing.T) {
	sum2 := Digest{Alg: SHA256, Sum: append(make([]byte, 31), 1)}
	all := Check{Attrs: AllAttrs}
	for _, tc := range []struct {
		name   string
		mut    func(e *Entry)
		check  Check
		prefix Digest
		want   string
	}{
		{"same", func(*Entry) {}, all, Digest{}, ""},
		{"content with forged mtime", func(e *Entry) { e.Content = sum2; e.Ctime++ }, all, Digest{}, "ctime,content"},
		{"chmod setuid", func(e *Entry) { e.Mode = 0o4755; e.Ctime++ }, all, Digest{}, "mode,ctime"},
		{"chown", func(e *Entry) { e.UID, e.GID = 1000, 1000 }, all, Digest{}, "uid,gid"},
		{"replaced", func(e *Entry) { e.Inode = 8 }, all, Digest{}, "inode"},
		{"xattr", func(e *Entry) { e.Xattrs = []Xattr{{"security.capability", []byte{1}}} }, all, Digest{}, "xattrs"},
		{"acl", func(e *Entry) { e.ACL = "user:1000:r--" }, all, Digest{}, "acl"},
		{"to symlink", func(e *Entry) { e.Type = TypeSymlink; e.LinkTarget = "x"; e.Content = Digest{} }, all, Digest{}, "type,link_target,content"},
		{"permissions only ignores content", func(e *Entry) { e.Content = sum2; e.Size = 3 }, Check{Attrs: AttrSet(AttrMode | AttrUID)}, Digest{}, ""},
		{"growing ok", func(e *Entry) { e.Size = 20; e.Mtime++; e.Ctime++; e.Content = sum2 }, Check{Attrs: AllAttrs, Growing: true}, file("").Content, ""},
		{"growing rewritten", func(e *Entry) { e.Size = 20; e.Content = sum2 }, Check{Attrs: AllAttrs, Growing: true}, sum2, "content"},
		{"growing shrank", func(e *Entry) { e.Size = 5 }, Check{Attrs: AllAttrs, Growing: true}, Digest{}, "size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old, new := file("/f"), file("/f")
			tc.mut(new)
			if got := Diff(old, new, tc.check, tc.prefix).String(); got != tc.want {
				t.Fatalf("Diff = %q, want %q", got, tc.want)
			}
		})
	}
}

func device(path string, typ FileType, major, minor uint32) *Entry {
	e := file(path)
	e.Type, e.Size, e.Content = typ, 0, Digest{}
	e.Rdev = &DevNumber{Major: major, Minor: minor}
	return e
}

func TestDiffDeviceNumbers(t *testing.T) {
	all := Check{Attrs: AllAttrs}
	v1 := func(e *Entry) *Entry { e.Rdev = nil; return e }
	for _, tc := range []struct {
		name     string
		old, new *Entry
		check    Check
		want     string
	}{
		{"same char device", device("/d", TypeCharDev, 1, 3), device("/d", TypeCharDev, 1, 3), all, ""},
		{"same block device", device("/d", TypeBlockDev, 8, 1), device("/d", TypeBlockDev, 8, 1), all, ""},
		{"minor changed", device("/d", TypeCharDev, 1, 3), device("/d", TypeCharDev, 1, 1), all, "rdev"},
		{"major changed", device("/d", TypeBlockDev, 8, 1), device("/d", TypeBlockDev, 259, 1), all, "rdev"},
		{"char to block, same number", device("/d", TypeCharDev, 8, 1), device("/d", TypeBlockDev, 8, 1), all, "type"},
		{"rdev not in the check", device("/d", TypeCharDev, 1, 3), device("/d", TypeCharDev, 1, 1), Check{Attrs: AttrSet(AttrMode)}, ""},
		{"old from a v1 baseline: not compared", v1(device("/d", TypeCharDev, 1, 3)), device("/d", TypeCharDev, 1, 1), all, ""},
		{"file replaced by a device", file("/d"), device("/d", TypeCharDev, 1, 3), all, "type,size,content,rdev"},
		{"device replaced by a file", device("/d", TypeCharDev, 1, 3), file("/d"), all, "type,size,content,rdev"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Diff(tc.old, tc.new, tc.check, Digest{}).String(); got != tc.want {
				t.Fatalf("Diff = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestDevNumberParse(t *testing.T) {
	d, err := ParseDevNumber("259:4294967295")
	if err != nil || d != (DevNumber{259, 1<<32 - 1}) || d.String() != "259:4294967295" {
		t.Fatalf("ParseDevNumber = %v, %v", d, err)
	}
	for _, bad := range []string{"", "8", "8:", ":1", "8:1:2", "-1:1", "8:4294967296", "a:b"} {
		if _, err := ParseDevNumber(bad); err == nil {
			t.Errorf("ParseDevNumber(%q) succeeded", bad)
		}
	}
}

func TestCompareKinds(t *testing.T) {
	all := Check{Attrs: AllAttrs}
	if c, ok := Compare(nil, file("/f"), all, Digest{}); !ok || c.Kind != Added {
		t.Errorf("added: %v %v", c, ok)
	}
	if c, ok := Compare(file("/f"), nil, all, Digest{}); !ok || c.Kind != Removed {
		t.Errorf("removed: %v %v", c, ok)
	}
	if _, ok := Compare(file("/f"), file("/f"), all, Digest{}); ok {
		t.Error("identical entries reported as a change")
	}
}

func TestChangeJSONRoundTrip(t *testing.T) {
	old := file("/etc/bad\xffname\nx")
	old.Xattrs = []Xattr{{"security.capability", []byte{0, 0, 0, 2, 0x20}}, {"user.note", []byte("hello")}, {"user.tricky", []byte("base64:not really")}}
	old.ACL = "user::rw-,user:1000:r--,group::r--,mask::r--,other::r--"
	new := file(old.Path)
	new.Type, new.LinkTarget, new.Content = TypeSymlink, "/tmp/\xfe", Digest{}
	c, ok := Compare(old, new, Check{Attrs: AllAttrs}, Digest{})
	if !ok {
		t.Fatal("no change")
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var j ChangeJSON
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatal(err)
	}
	if j.Path != "/etc/bad\uFFFDname\nx" || j.PathB64 == "" {
		t.Errorf("path = %q, path_b64 = %q", j.Path, j.PathB64)
	}
	back, err := j.Change()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, &c) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", back, &c)
	}
}

func TestDeviceJSON(t *testing.T) {
	old, new := device("/dev/sda1", TypeBlockDev, 8, 1), device("/dev/sda1", TypeBlockDev, 1, 1)
	c, ok := Compare(old, new, Check{Attrs: AllAttrs}, Digest{})
	if !ok {
		t.Fatal("no change")
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"changed":["rdev"]`, `"rdev":"8:1"`, `"rdev":"1:1"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON lacks %s: %s", want, b)
		}
	}
	var j ChangeJSON
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatal(err)
	}
	back, err := j.Change()
	if err != nil || !reflect.DeepEqual(back, &c) {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
	// Files have no device number: none is written, and one is refused.
	if b, _ := json.Marshal(file("/f").JSON(true)); strings.Contains(string(b), "rdev") {
		t.Errorf("file JSON has rdev: %s", b)
	}
	j.Old.Type = "file"
	if _, err := j.Change(); err == nil || !strings.Contains(err.Error(), "only devices") {
		t.Errorf("rdev on a file: err = %v", err)
	}
}

func FuzzChangeJSON(f *testing.F) {
	f.Add(`{"path":"/a","type":"modified","changed":["mode"],"old":{"type":"file","size":1,"mode":"0644","uid":0,"gid":0,"mtime":"2026-01-01T00:00:00Z","ctime":"2026-01-01T00:00:00Z","inode":1,"nlink":1,"dev":1},"new":{"type":"file","size":1,"mode":"0755","uid":0,"gid":0,"mtime":"2026-01-01T00:00:00Z","ctime":"2026-01-01T00:00:00Z","inode":1,"nlink":1,"dev":1}}`)
	f.Add(`{"path":"/dev/x","type":"modified","changed":["rdev"],"old":{"type":"char","size":0,"mode":"0600","uid":0,"gid":0,"mtime":"2026-01-01T00:00:00Z","ctime":"2026-01-01T00:00:00Z","inode":1,"nlink":1,"dev":5,"rdev":"1:3"},"new":{"type":"char","size":0,"mode":"0600","uid":0,"gid":0,"mtime":"2026-01-01T00:00:00Z","ctime":"2026-01-01T00:00:00Z","inode":1,"nlink":1,"dev":5,"rdev":"1:1"}}`)
	f.Fuzz(func(t *testing.T, s string) {
		var j ChangeJSON
		if json.Unmarshal([]byte(s), &j) != nil {
			return
		}
		c, err := j.Change()
		if err != nil {
			return
		}
		// Whatever decodes must encode and decode to the same change.
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		var j2 ChangeJSON
		if err := json.Unmarshal(b, &j2); err != nil {
			t.Fatal(err)
		}
		c2, err := j2.Change()
		if err != nil {
			t.Fatalf("re-decode %s: %v", b, err)
		}
		if !reflect.DeepEqual(c, c2) {
			t.Fatalf("unstable round trip: %s", b)
		}
	})
}
