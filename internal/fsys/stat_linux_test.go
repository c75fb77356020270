package fsys

import (
	"bytes"
	"errors"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vigilfim/vigil/internal/fim"
)

func needRoot(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: " + why)
	}
}

func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("needs %s (Debian: apt-get install -y acl attr libcap2-bin)", name)
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustLstat(t *testing.T, path string) *fim.Entry {
	t.Helper()
	e, err := Lstat(path)
	if err != nil {
		t.Fatalf("Lstat(%q): %v", path, err)
	}
	return e
}

func TestLstatRegularMatchesKernel(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	writeFile(t, p, "hello")
	e := mustLstat(t, p)
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	want := fim.Entry{
		Path: p, Type: fim.TypeFile, Size: 5, Mode: 0o644 &^ uint32(umask()), UID: st.Uid, GID: st.Gid,
		Mtime: tsNano(st.Mtim), Ctime: tsNano(st.Ctim), Inode: st.Ino, Dev: st.Dev, Nlink: 1,
	}
	if e.Path != want.Path || e.Type != want.Type || e.Size != want.Size || e.Mode != want.Mode ||
		e.UID != want.UID || e.GID != want.GID || e.Mtime != want.Mtime || e.Ctime != want.Ctime ||
		e.Inode != want.Inode || e.Dev != want.Dev || e.Nlink != want.Nlink || e.LinkTarget != "" ||
		len(e.Xattrs) != 0 || e.ACL != "" || !e.Content.IsZero() {
		t.Fatalf("Lstat = %+v\nwant   %+v", *e, want)
	}
}

func umask() int {
	m := unix.Umask(0)
	unix.Umask(m)
	return m
}

func TestLstatTypes(t *testing.T) {
	dir := t.TempDir()
	j := func(n string) string { return filepath.Join(dir, n) }
	writeFile(t, j("file"), "x")
	writeFile(t, j("empty"), "")
	if err := os.Mkdir(j("dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(j("file"), j("hardlink")); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"link": "file", "dangling": "nowhere", "linkdir": "dir", "abs": "/etc/passwd"} {
		if err := os.Symlink(target, j(name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Mkfifo(j("fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", j("sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	tests := []struct {
		name   string
		typ    fim.FileType
		target string
		nlink  uint64
	}{
		{"file", fim.TypeFile, "", 2},
		{"hardlink", fim.TypeFile, "", 2},
		{"empty", fim.TypeFile, "", 1},
		{"dir", fim.TypeDir, "", 2},
		{"link", fim.TypeSymlink, "file", 1},
		{"dangling", fim.TypeSymlink, "nowhere", 1},
		{"linkdir", fim.TypeSymlink, "dir", 1},
		{"abs", fim.TypeSymlink, "/etc/passwd", 1},
		{"fifo", fim.TypeFIFO, "", 1},
		{"sock", fim.TypeSocket, "", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := mustLstat(t, j(tt.name))
			if e.Type != tt.typ || e.LinkTarget != tt.target || e.Nlink != tt.nlink {
				t.Fatalf("got type %v target %q nlink %d; want %v %q %d", e.Type, e.LinkTarget, e.Nlink, tt.typ, tt.target, tt.nlink)
			}
		})
	}
	if a, b := mustLstat(t, j("file")), mustLstat(t, j("hardlink")); a.Inode != b.Inode || a.Dev != b.Dev {
		t.Errorf("hard links differ: %d/%d vs %d/%d", a.Dev, a.Inode, b.Dev, b.Inode)
	}

	// The listing reports the same types, sorted bytewise.
	d, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ents, err := d.ReadDir()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range ents {
		names = append(names, de.Name)
		if want := mustLstat(t, j(de.Name)).Type; de.Type != want && de.Type != fim.TypeUnknown {
			t.Errorf("ReadDir type of %s = %v, want %v", de.Name, de.Type, want)
		}
	}
	if !slices.IsSorted(names) || len(names) != 10 {
		t.Errorf("ReadDir names = %q; want 10 sorted names", names)
	}
}

func TestLstatDevice(t *testing.T) {
	needRoot(t, "mknod")
	dir := t.TempDir()
	p := filepath.Join(dir, "null")
	if err := unix.Mknod(p, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))); err != nil {
		t.Skipf("mknod not permitted here: %v", err)
	}
	if e := mustLstat(t, p); e.Type != fim.TypeCharDev || e.Mode != 0o600 || e.RdevString() != "1:3" {
		t.Fatalf("got %v %o rdev %q", e.Type, e.Mode, e.RdevString())
	}
	// A block device with a major and minor beyond the old 8-bit
	// encodings, to check the split of st_rdev.
	b := filepath.Join(dir, "blk")
	if err := unix.Mknod(b, unix.S_IFBLK|0o660, int(unix.Mkdev(259, 70000))); err != nil {
		t.Fatalf("mknod block device: %v", err)
	}
	if e := mustLstat(t, b); e.Type != fim.TypeBlockDev || e.RdevString() != "259:70000" {
		t.Fatalf("block device: got %v rdev %q", e.Type, e.RdevString())
	}
	// Only devices carry a number.
	if e := mustLstat(t, dir); e.Rdev != nil {
		t.Fatalf("directory has rdev %v", e.Rdev)
	}
	_, err := Hash(t.Context(), p, nil, HashRequest{Alg: fim.SHA256})
	if !errors.Is(err, ErrNotRegular) {
		t.Fatalf("Hash(device) = %v; want ErrNotRegular", err)
	}
}

func TestLstatSpecialModes(t *testing.T) {
	dir := t.TempDir()
	for _, mode := range []uint32{0o4755, 0o2755, 0o1777, 0o7000, 0o0} {
		p := filepath.Join(dir, "f")
		writeFile(t, p, "")
		if err := unix.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		if e := mustLstat(t, p); e.Mode != mode {
			t.Errorf("mode = %04o, want %04o", e.Mode, mode)
		}
		os.Remove(p)
	}
}

func TestOddNames(t *testing.T) {
	dir := t.TempDir()
	names := []string{"new\nline", "\xff\xfeinvalid", "tab\there", " lead", "trail ", "back\\slash", "émoji-🙂"}
	for _, n := range names {
		writeFile(t, filepath.Join(dir, n), n)
	}
	d, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ents, err := d.ReadDir()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, de := range ents {
		got = append(got, de.Name)
		p := dir + "/" + de.Name
		e, err := d.Lstat(de.Name, p, 0)
		if err != nil || e.Path != p || e.Size != int64(len(de.Name)) {
			t.Errorf("Lstat(%q) = %+v, %v", de.Name, e, err)
		}
		r, err := d.Hash(t.Context(), de.Name, p, e, HashRequest{Alg: fim.SHA256})
		if err != nil || r.Size != int64(len(de.Name)) {
			t.Errorf("Hash(%q) = %+v, %v", de.Name, r, err)
		}
	}
	slices.Sort(names)
	if !slices.Equal(got, names) {
		t.Errorf("ReadDir = %q, want %q", got, names)
	}
}

func TestXattrs(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	writeFile(t, p, "x")
	big := bytes.Repeat([]byte("v"), 3000) // larger than the first-try buffer
	for _, x := range []fim.Xattr{{Name: "user.zeta", Value: []byte("z")}, {Name: "user.alpha", Value: []byte("a\x00b")}, {Name: "user.big", Value: big}, {Name: "user.empty"}} {
		if err := unix.Setxattr(p, x.Name, x.Value, 0); err != nil {
			if err == unix.ENOTSUP {
				t.Skip("file system without user xattrs")
			}
			t.Fatal(err)
		}
	}
	e := mustLstat(t, p)
	var names []string
	for _, x := range e.Xattrs {
		names = append(names, x.Name)
	}
	if want := []string{"user.alpha", "user.big", "user.empty", "user.zeta"}; !slices.Equal(names, want) {
		t.Fatalf("xattr names = %q, want %q", names, want)
	}
	if v, _ := e.Xattr("user.alpha"); string(v) != "a\x00b" {
		t.Errorf("user.alpha = %q", v)
	}
	if v, _ := e.Xattr("user.big"); !bytes.Equal(v, big) {
		t.Errorf("user.big has %d bytes", len(v))
	}

	// Only what is asked for is read.
	d, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if e, err := d.Lstat("f", p, fim.AllAttrs.Without(fim.AttrXattrs)); err != nil || len(e.Xattrs) != 0 {
		t.Errorf("Lstat without AttrXattrs = %v, %v", e.Xattrs, err)
	}

	// Xattr calls on symlinks are fine, and so is the directory's own view.
	if err := os.Symlink("f", filepath.Join(dir, "l")); err != nil {
		t.Fatal(err)
	}
	if e := mustLstat(t, filepath.Join(dir, "l")); len(e.Xattrs) != 0 {
		t.Errorf("symlink xattrs = %v", e.Xattrs)
	}
	if err := unix.Setxattr(dir, "user.d", []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	if de, err := d.Stat(fim.AllAttrs); err != nil || len(de.Xattrs) != 1 || de.Type != fim.TypeDir {
		t.Errorf("Dir.Stat = %+v, %v", de, err)
	}
}

func TestACL(t *testing.T) {
	needTool(t, "setfacl")
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	writeFile(t, p, "x")
	if err := os.Chmod(p, 0o640); err != nil {
		t.Fatal(err)
	}
	if e := mustLstat(t, p); e.ACL != "" {
		t.Fatalf("ACL of a plain file = %q", e.ACL)
	}
	run(t, "setfacl", "-m", "u:1000:r,g:50:rw", p)
	e := mustLstat(t, p)
	if want := "user::rw-,user:1000:r--,group::r--,group:50:rw-,mask::rw-,other::---"; e.ACL != want {
		t.Errorf("ACL = %q, want %q", e.ACL, want)
	}
	for _, x := range e.Xattrs {
		if strings.HasPrefix(x.Name, "system.posix_acl") {
			t.Errorf("ACL xattr %s listed among xattrs", x.Name)
		}
	}
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o750); err != nil {
		t.Fatal(err)
	}
	run(t, "setfacl", "-d", "-m", "u:1000:rx", sub)
	if want := "default:user::rwx,default:user:1000:r-x,default:group::r-x,default:mask::r-x,default:other::---"; mustLstat(t, sub).ACL != want {
		t.Errorf("default ACL = %q, want %q", mustLstat(t, sub).ACL, want)
	}
	run(t, "setfacl", "-b", p)
	if e := mustLstat(t, p); e.ACL != "" {
		t.Errorf("ACL after setfacl -b = %q", e.ACL)
	}
}

func TestCapabilityFromSetcap(t *testing.T) {
	needRoot(t, "setcap")
	needTool(t, "setcap")
	p := filepath.Join(t.TempDir(), "bin")
	writeFile(t, p, "#!/bin/sh\n")
	run(t, "setcap", "cap_net_raw,cap_net_admin=ep", p)
	v, ok := mustLstat(t, p).Xattr(XattrCapability)
	if !ok {
		t.Fatal("no security.capability xattr after setcap")
	}
	got, err := CapabilityText(v)
	if err != nil || got != "cap_net_admin,cap_net_raw=ep" {
		t.Fatalf("CapabilityText = %q, %v", got, err)
	}
	if out := run(t, "getcap", p); !strings.Contains(out, got) {
		t.Errorf("getcap says %q, we say %q", out, got)
	}
}

func TestOpenDirRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	if err := os.Symlink(".", filepath.Join(dir, "l")); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenDir(filepath.Join(dir, "l")); !errors.Is(err, unix.ELOOP) && !errors.Is(err, unix.ENOTDIR) {
		t.Fatalf("OpenDir(symlink) = %v; want ELOOP", err)
	}
	var pe *fs.PathError
	_, err := OpenDir(filepath.Join(dir, "missing"))
	if !errors.As(err, &pe) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("OpenDir(missing) = %v", err)
	}
}

// Kernels before 6.13 lack listxattrat/getxattrat; the path-based calls
// must give the same result.
func TestXattrsPathFallback(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	writeFile(t, p, "x")
	if err := unix.Setxattr(p, "user.k", []byte("v"), 0); err != nil {
		t.Skipf("no user xattrs: %v", err)
	}
	at := mustLstat(t, p)
	xattrAtMissing.Store(true)
	defer xattrAtMissing.Store(false)
	path := mustLstat(t, p)
	if len(at.Xattrs) != 1 || len(path.Xattrs) != 1 || string(path.Xattrs[0].Value) != "v" || at.Xattrs[0].Name != path.Xattrs[0].Name {
		t.Fatalf("xattrs via *at %v, via path %v", at.Xattrs, path.Xattrs)
	}
}
