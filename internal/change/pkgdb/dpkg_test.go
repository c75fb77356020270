package pkgdb

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/vigilfim/vigil/internal/fim"
)

// TestRealDpkg reads this machine's dpkg database and checks /bin/ls
// against the package that owns it, as `dpkg -S` and `dpkg -V` would.
func TestRealDpkg(t *testing.T) {
	if _, err := os.Stat("/var/lib/dpkg/status"); err != nil {
		t.Skip("no dpkg database on this system")
	}
	db, err := OpenDpkg(t.Context(), "/")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("indexed %d paths", db.Len())

	ls, err := filepath.EvalSymlinks("/bin/ls")
	if err != nil {
		t.Fatal(err)
	}
	want := dpkgOwner(t, "/bin/ls")
	for _, p := range []string{"/bin/ls", ls} {
		owners := db.Lookup(p)
		if len(owners) == 0 || owners[0].Package != want {
			t.Fatalf("Lookup(%s) = %+v, want package %s", p, owners, want)
		}
		o := owners[0]
		if o.Version == "" || o.Arch == "" || o.Alg != "md5" || o.Path != p {
			t.Fatalf("Lookup(%s) = %+v", p, o)
		}
		ev, err := Check(t.Context(), db, p, fim.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		m := md5.Sum(data)
		if !ev.Matches || ev.Package != want || ev.Manager != "dpkg" || ev.Content != "sha256:"+hex.EncodeToString(sum[:]) || hex.EncodeToString(o.Sum) != hex.EncodeToString(m[:]) {
			t.Fatalf("Check(%s) = %+v", p, ev)
		}
	}
}

// TestRealDpkgConffile checks a conffile's checksum comes from the status
// file's Conffiles field.
func TestRealDpkgConffile(t *testing.T) {
	if _, err := os.Stat("/var/lib/dpkg/status"); err != nil {
		t.Skip("no dpkg database on this system")
	}
	db, err := OpenDpkg(t.Context(), "/")
	if err != nil {
		t.Fatal(err)
	}
	owners := db.Lookup("/etc/debian_version")
	if len(owners) == 0 || owners[0].Package != "base-files" || !owners[0].Conffile {
		t.Fatalf("Lookup(/etc/debian_version) = %+v", owners)
	}
}

func dpkgOwner(t *testing.T, path string) string {
	out, err := exec.Command("dpkg-query", "-S", path).Output()
	if err != nil {
		t.Skipf("dpkg-query -S %s: %v", path, err)
	}
	pkg, _, _ := strings.Cut(string(out), ":")
	return pkg
}

// fixture is a small dpkg database under a temporary root, describing
// files in dir (absolute, on the real file system).
func fixture(t *testing.T, dir string, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	admin := filepath.Join(root, "var/lib/dpkg")
	if err := os.MkdirAll(filepath.Join(admin, "info"), 0o755); err != nil {
		t.Fatal(err)
	}
	md5line := func(content, path string) string {
		s := md5.Sum([]byte(content))
		return hex.EncodeToString(s[:]) + "  " + strings.TrimPrefix(path, "/") + "\n"
	}
	conf := md5.Sum([]byte(files["app.conf"]))
	status := fmt.Sprintf(`Package: app
Status: install ok installed
Architecture: amd64
Version: 1.2-1
Conffiles:
 %[1]s/app.conf %[2]s
 %[1]s/old.conf 00000000000000000000000000000000 obsolete
Description: an app
 with a description line that looks like a conffile
 %[1]s/desc.conf 00000000000000000000000000000000

Package: libapp
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Version: 1.2-1

Package: libapp
Status: install ok installed
Architecture: i386
Multi-Arch: same
Version: 1.2-1

Package: gone
Status: deinstall ok not-installed
Architecture: amd64
Version: 0.9
`, dir, hex.EncodeToString(conf[:]))
	write := func(name, data string) {
		if err := os.WriteFile(filepath.Join(admin, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("status", status)
	write("info/app.md5sums", md5line(files["app"], dir+"/app")+md5line(files["tool"], dir+"/tool"))
	write("info/libapp:amd64.md5sums", md5line(files["libapp.so"], dir+"/libapp.so"))
	write("info/libapp:i386.md5sums", md5line("i386 build", dir+"/libapp.so"))
	write("info/other.md5sums", md5line("other tool", dir+"/tool"))
	write("diversions", dir+"/tool\n"+dir+"/tool.distrib\napp\n")
	if err := os.Symlink("usr/bin", filepath.Join(root, "bin")); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestDpkgFixture(t *testing.T) {
	dir := t.TempDir()
	root := fixture(t, dir, map[string]string{"app": "app binary", "app.conf": "workers = 4\n", "libapp.so": "amd64 build", "tool": "app's tool"})
	db, err := OpenDpkg(t.Context(), root)
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(p string) string {
		var s []string
		for _, f := range db.Lookup(p) {
			s = append(s, fmt.Sprintf("%s:%s %s conf=%v", f.Package, f.Arch, f.Version, f.Conffile))
		}
		return strings.Join(s, "; ")
	}
	tests := []struct{ path, want string }{
		{dir + "/app", "app:amd64 1.2-1 conf=false"},
		{dir + "/app.conf", "app:amd64 1.2-1 conf=true"},
		{dir + "/old.conf", ""},
		{dir + "/desc.conf", ""},
		{dir + "/libapp.so", "libapp:amd64 1.2-1 conf=false; libapp:i386 1.2-1 conf=false"},
		{dir + "/tool", "app:amd64 1.2-1 conf=false"},
		{dir + "/tool.distrib", "other:  conf=false"}, // no status entry: no arch, no version
		{dir + "/nothing", ""},
	}
	for _, tc := range tests {
		if got := lookup(tc.path); got != tc.want {
			t.Errorf("Lookup(%s) = %q, want %q", tc.path, got, tc.want)
		}
	}
	if len(db.aliases) != 1 || db.aliases[0] != (alias{"/bin", "/usr/bin"}) {
		t.Errorf("aliases = %v", db.aliases)
	}

	check := func(p string) (matches bool, pkg string) {
		t.Helper()
		ev, err := Check(context.Background(), db, p, fim.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		if ev == nil {
			return false, ""
		}
		return ev.Matches, ev.Package + ":" + ev.Arch
	}
	if m, p := check(dir + "/app"); !m || p != "app:amd64" {
		t.Errorf("app: %v %s", m, p)
	}
	if m, p := check(dir + "/libapp.so"); !m || p != "libapp:amd64" {
		t.Errorf("multi-arch pick: %v %s", m, p)
	}
	if m, _ := check(dir + "/nothing"); m {
		t.Error("unowned path matched")
	}
	if err := os.WriteFile(dir+"/app.conf", []byte("workers = 64\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if m, p := check(dir + "/app.conf"); m || p != "app:amd64" {
		t.Errorf("edited conffile: %v %s", m, p)
	}
	ev, err := Check(t.Context(), db, dir+"/app", fim.BLAKE3)
	if err != nil || !strings.HasPrefix(ev.Content, "blake3:") {
		t.Errorf("blake3 content: %v %+v", err, ev)
	}
}

func TestCheckRefuses(t *testing.T) {
	dir := t.TempDir()
	root := fixture(t, dir, map[string]string{"app": "app binary", "app.conf": "x", "libapp.so": "y", "tool": "z"})
	db, err := OpenDpkg(t.Context(), root)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(dir + "/app"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("app.conf", dir+"/app"); err != nil {
		t.Fatal(err)
	}
	if _, err := Check(t.Context(), db, dir+"/app", fim.SHA256); err == nil {
		t.Error("followed a symlink")
	}
	if err := os.Remove(dir + "/app"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir+"/app", 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Check(t.Context(), db, dir+"/app", fim.SHA256); !errors.Is(err, ErrNotRegular) {
		t.Errorf("directory: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Check(ctx, db, dir+"/libapp.so", fim.SHA256); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: %v", err)
	}
}

func TestOpenDpkgErrors(t *testing.T) {
	if _, err := OpenDpkg(t.Context(), t.TempDir()); err == nil || !strings.Contains(err.Error(), "open dpkg status") {
		t.Errorf("missing status: %v", err)
	}
	dir := t.TempDir()
	root := fixture(t, dir, map[string]string{"app": "a", "app.conf": "b", "libapp.so": "c", "tool": "d"})
	bad := filepath.Join(root, "var/lib/dpkg/info/bad.md5sums")
	if err := os.WriteFile(bad, []byte("not-a-sum path\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenDpkg(t.Context(), root); err == nil || !strings.Contains(err.Error(), "bad.md5sums: line 1") {
		t.Errorf("bad md5sums: %v", err)
	}
}

func BenchmarkOpenDpkg(b *testing.B) {
	if _, err := os.Stat("/var/lib/dpkg/status"); err != nil {
		b.Skip("no dpkg database on this system")
	}
	var retained float64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		db, err := OpenDpkg(b.Context(), "/")
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		retained = float64(after.HeapAlloc-before.HeapAlloc) / 1e6
		b.ReportMetric(float64(db.Len()), "paths")
		runtime.KeepAlive(db)
	}
	b.ReportMetric(retained, "MB-retained")
}
