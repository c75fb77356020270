package pkgdb

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Dpkg is the dpkg database of a system, read once into an index of path
// → owners. On a Debian 12 host with 770 packages that is about 95,000
// paths and 16 MB of heap (BenchmarkOpenDpkg); open it again after dpkg
// runs to see what dpkg changed.
type Dpkg struct {
	pkgs    []dpkgPackage
	files   map[string][]dpkgFile
	aliases []alias
	// divertedBy maps a diverted path to the diverting package ("" for a
	// local diversion); divertedTo maps a diversion target to its source.
	divertedBy map[string]string
	divertedTo map[string]string
}

type dpkgPackage struct{ name, arch, version string }

type dpkgFile struct {
	pkg      int32
	conffile bool
	md5      [16]byte
}

// alias is a merged-/usr directory pair: "/bin" is a symlink to "usr/bin",
// so a package listing "/bin/ls" owns "/usr/bin/ls" too.
type alias struct{ short, long string }

var _ DB = (*Dpkg)(nil)

// maxLine bounds one line of a dpkg database file; real lines are paths
// and package descriptions, well below this.
const maxLine = 64 << 10

// OpenDpkg reads the dpkg database of the system rooted at root ("/" for
// this host): the status file for package versions and conffile checksums,
// info/*.md5sums for the other files' checksums, and the diversions. It
// also notes which top-level directories are merged-/usr symlinks.
func OpenDpkg(ctx context.Context, root string) (*Dpkg, error) {
	admin := filepath.Join(root, "var/lib/dpkg")
	d := &Dpkg{files: map[string][]dpkgFile{}, divertedBy: map[string]string{}, divertedTo: map[string]string{}}
	index := map[dpkgPackage]int32{}
	pkgIndex := func(name, arch string) int32 {
		k := dpkgPackage{name: name, arch: arch}
		if i, ok := index[k]; ok {
			return i
		}
		// A package with files but no status entry (a database caught
		// mid-upgrade): keep it, without a version.
		index[k] = int32(len(d.pkgs))
		d.pkgs = append(d.pkgs, k)
		return index[k]
	}
	if err := d.readStatus(filepath.Join(admin, "status"), index, pkgIndex); err != nil {
		return nil, err
	}
	lists, err := filepath.Glob(filepath.Join(admin, "info", "*.md5sums"))
	if err != nil {
		return nil, fmt.Errorf("open dpkg database: %w", err)
	}
	slices.Sort(lists)
	for _, l := range lists {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		name := strings.TrimSuffix(filepath.Base(l), ".md5sums")
		name, arch, _ := strings.Cut(name, ":")
		if arch == "" {
			arch = d.archOf(index, name)
		}
		if err := d.readMD5sums(l, pkgIndex(name, arch)); err != nil {
			return nil, err
		}
	}
	if err := d.readDiversions(filepath.Join(admin, "diversions")); err != nil {
		return nil, err
	}
	for _, dir := range []string{"bin", "sbin", "lib", "lib32", "lib64", "libx32"} {
		if t, err := os.Readlink(filepath.Join(root, dir)); err == nil && (t == "usr/"+dir || t == "/usr/"+dir) {
			d.aliases = append(d.aliases, alias{short: "/" + dir, long: "/usr/" + dir})
		}
	}
	return d, nil
}

// archOf finds the architecture of a package whose md5sums file carries no
// ":arch" qualifier (Multi-Arch: no/foreign/allowed packages).
func (d *Dpkg) archOf(index map[dpkgPackage]int32, name string) string {
	var found string
	for k := range index {
		if k.name == name && (found == "" || k.arch < found) {
			found = k.arch
		}
	}
	return found
}

// readStatus reads package stanzas: Package, Architecture, Version and
// the Conffiles field (" /etc/x <md5> [obsolete|remove-on-upgrade]").
func (d *Dpkg) readStatus(name string, index map[dpkgPackage]int32, pkgIndex func(string, string) int32) error {
	f, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("open dpkg status: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	var pkg, arch, version, status, field string
	var conffiles []string
	lineNo := 0
	flush := func() {
		if pkg != "" && !strings.HasSuffix(status, " not-installed") {
			i := pkgIndex(pkg, arch)
			d.pkgs[i].version = version
			for _, c := range conffiles {
				d.addConffile(i, c)
			}
		}
		pkg, arch, version, status, field, conffiles = "", "", "", "", "", nil
	}
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		switch {
		case line == "":
			flush()
			continue
		case line[0] == ' ' || line[0] == '\t':
			if field == "conffiles" {
				conffiles = append(conffiles, line)
			}
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return fmt.Errorf("read dpkg status: line %d: want \"Field: value\"", lineNo)
		}
		field = strings.ToLower(k)
		v = strings.TrimSpace(v)
		switch field {
		case "package":
			pkg = v
		case "architecture":
			arch = v
		case "version":
			version = v
		case "status":
			status = v
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read dpkg status: line %d: %w", lineNo+1, err)
	}
	flush()
	return nil
}

func (d *Dpkg) addConffile(pkg int32, line string) {
	fields := strings.Fields(line)
	if len(fields) < 2 || (len(fields) > 2 && (fields[2] == "obsolete" || fields[2] == "remove-on-upgrade")) {
		return
	}
	var sum [16]byte
	if n, err := hex.Decode(sum[:], []byte(fields[1])); err != nil || n != 16 {
		return // "newconffile": not installed yet
	}
	d.add(fields[0], dpkgFile{pkg: pkg, conffile: true, md5: sum})
}

func (d *Dpkg) add(path string, f dpkgFile) {
	for _, o := range d.files[path] {
		if o.pkg == f.pkg {
			return // a conffile is also listed in old-style md5sums
		}
	}
	d.files[path] = append(d.files[path], f)
}

// readMD5sums reads "<md5>  <path relative to />" lines.
func (d *Dpkg) readMD5sums(name string, pkg int32) error {
	f, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("open dpkg md5sums: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	for lineNo := 1; ; lineNo++ {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return fmt.Errorf("read %s: line %d: longer than %d bytes", name, lineNo, r.Size())
		}
		if len(line) > 0 {
			line = bytes.TrimSuffix(line, []byte("\n"))
			sum, rest, ok := bytes.Cut(line, []byte("  "))
			var md5 [16]byte
			if n, herr := hex.Decode(md5[:], sum); !ok || herr != nil || n != 16 || len(rest) == 0 {
				return fmt.Errorf("read %s: line %d: want \"<md5>  <path>\"", name, lineNo)
			}
			d.add("/"+string(bytes.TrimPrefix(rest, []byte("/"))), dpkgFile{pkg: pkg, md5: md5})
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
	}
}

// readDiversions reads the diversions file: three lines per diversion,
// the diverted path, where it was moved, and the diverting package (":"
// for a local diversion made by the administrator).
func (d *Dpkg) readDiversions(name string) error {
	data, err := os.ReadFile(name)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read dpkg diversions: %w", err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines)%3 != 0 {
		return fmt.Errorf("read dpkg diversions: %d lines, want a multiple of three", len(lines))
	}
	for i := 0; i+2 < len(lines); i += 3 {
		by := lines[i+2]
		if by == ":" {
			by = ""
		}
		d.divertedBy[lines[i]] = by
		d.divertedTo[lines[i+1]] = lines[i]
	}
	return nil
}

// Lookup returns the packages owning path, trying the merged-/usr alias of
// the path when the package lists the other spelling. Diversions are
// honoured: the file at a diverted path belongs to the diverting package
// only, and the file at a diversion's target to the other packages that
// list the original path.
func (d *Dpkg) Lookup(path string) []File {
	for _, p := range d.spellings(path) {
		if out := d.lookup(path, p); len(out) > 0 {
			return out
		}
	}
	return nil
}

func (d *Dpkg) spellings(path string) []string {
	out := []string{path}
	for _, a := range d.aliases {
		if rest, ok := strings.CutPrefix(path, a.long+"/"); ok {
			out = append(out, a.short+"/"+rest)
		} else if rest, ok := strings.CutPrefix(path, a.short+"/"); ok {
			out = append(out, a.long+"/"+rest)
		}
	}
	return out
}

func (d *Dpkg) lookup(asked, path string) []File {
	var keep func(pkg string) bool
	listed := path
	if by, ok := d.divertedBy[path]; ok {
		keep = func(pkg string) bool { return pkg == by }
	} else if from, ok := d.divertedTo[path]; ok {
		by := d.divertedBy[from]
		listed = from
		keep = func(pkg string) bool { return pkg != by }
	}
	var out []File
	for _, f := range d.files[listed] {
		p := d.pkgs[f.pkg]
		if keep != nil && !keep(p.name) {
			continue
		}
		out = append(out, File{Manager: "dpkg", Package: p.name, Version: p.version, Arch: p.arch,
			Path: asked, Conffile: f.conffile, Alg: "md5", Sum: f.md5[:]})
	}
	return out
}

// Len returns the number of paths in the index.
func (d *Dpkg) Len() int { return len(d.files) }
