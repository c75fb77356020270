package policy

import (
	"bytes"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/vigilfim/vigil/internal/fim"
)

var update = flag.Bool("update", false, "rewrite testdata/invalid/*.golden and the FuzzParse seed corpus")

// example is one policy text the repository ships or documents.
type example struct {
	name string
	data []byte
}

// examples returns every policy that must parse: the files under
// policies/, every ```yaml block of docs/policy.md, and testdata/valid/.
func examples(t *testing.T) []example {
	t.Helper()
	var out []example
	for _, glob := range []string{"../../policies/*.yaml", "testdata/valid/*.yaml"} {
		files, err := filepath.Glob(glob)
		if err != nil {
			t.Fatal(err)
		}
		if len(files) == 0 {
			t.Fatalf("no files match %s", glob)
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, example{f, data})
		}
	}
	blocks := docBlocks(t)
	if len(blocks) < 5 {
		t.Fatalf("docs/policy.md has %d yaml blocks, expected its examples", len(blocks))
	}
	return append(out, blocks...)
}

var yamlBlock = regexp.MustCompile("(?ms)^```yaml\n(.*?)^```\n")

// docBlocks extracts the ```yaml blocks of docs/policy.md, named by line.
func docBlocks(t *testing.T) []example {
	t.Helper()
	const doc = "../../docs/policy.md"
	data, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	var out []example
	for _, m := range yamlBlock.FindAllSubmatchIndex(data, -1) {
		line := bytes.Count(data[:m[2]], []byte("\n")) + 1
		out = append(out, example{doc + ":" + strconv.Itoa(line), data[m[2]:m[3]]})
	}
	return out
}

func TestExamplesParseAndRoundTrip(t *testing.T) {
	for _, ex := range examples(t) {
		t.Run(ex.name, func(t *testing.T) {
			p, err := Parse(ex.name, ex.data)
			if err != nil {
				t.Fatalf("parse:\n%v", err)
			}
			checkRoundTrip(t, p)
		})
	}
}

// checkRoundTrip asserts Parse(Marshal(p)) equals p and that Marshal is a
// fixed point (canonical).
func checkRoundTrip(t *testing.T, p *Policy) {
	t.Helper()
	out, err := Marshal(p)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	back, err := Parse("marshalled", out)
	if err != nil {
		t.Fatalf("parse marshalled policy: %v\n%s", err, out)
	}
	if !back.Equal(p) {
		t.Fatalf("round trip changed the policy:\n%s", out)
	}
	again, err := Marshal(back)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, again) {
		t.Fatalf("Marshal is not canonical:\n%s\n---\n%s", out, again)
	}
}

func TestDefaultPolicyCopiesIdentical(t *testing.T) {
	repo, err := os.ReadFile("../../policies/linux-host.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(repo, DefaultSource()) {
		t.Fatal("policies/linux-host.yaml differs from internal/policy/builtin/linux-host.yaml: copy the builtin over it")
	}
}

func TestDefault(t *testing.T) {
	p := Default()
	if p.Name != "linux-host" {
		t.Errorf("name = %q", p.Name)
	}
	tests := []struct {
		path     string
		rule     string // rule name, "" for none
		severity Severity
		growing  bool
	}{
		{"/etc/shadow", "password hashes", SeverityCritical, false},
		{"/etc/sudoers.d/admins", "sudo policy fragments", SeverityCritical, false},
		{"/etc/hostname", "system configuration", SeverityMedium, false},
		{"/etc/.hostname.swp", "", 0, false},
		{"/etc/ld.so.cache", "", 0, false},
		{"/etc/lvm/archive/vg0_00001.vg", "", 0, false},
		{"/usr/bin/ls", "binaries", SeverityHigh, false},
		{"/usr/lib/modules/6.1.0-18-amd64/kernel/fs/ext4/ext4.ko", "kernel modules", SeverityCritical, false},
		{"/usr/lib/systemd/system/ssh.service", "systemd units, generators and helpers", SeverityHigh, false},
		{"/boot/vmlinuz-6.1.0-18-amd64", "boot loader and kernels", SeverityCritical, false},
		{"/boot/grub/grubenv", "", 0, false},
		{"/var/log/auth.log", "logs", SeverityHigh, true},
		{"/var/log/auth.log.1", "", 0, false},
		{"/var/log/journal/abc/system.journal", "", 0, false},
		{"/var/spool/cron/crontabs/root", "user crontabs and at jobs", SeverityHigh, false},
		{"/root/.bashrc", "root's home", SeverityHigh, false},
		{"/root/.bash_history", "", 0, false},
		{"/root/projects/x", "", 0, false},
		{"/root/.ssh/authorized_keys", "root's SSH keys", SeverityCritical, false},
		{"/root/.ssh/known_hosts", "", 0, false},
		{"/home/alice/.profile", "", 0, false},
		{"/proc/1/status", "", 0, false},
	}
	for _, tt := range tests {
		r := p.Lookup(tt.path)
		switch {
		case r == nil && tt.rule == "":
		case r == nil || r.Name != tt.rule:
			t.Errorf("Lookup(%q) = %v, want rule %q", tt.path, r, tt.rule)
		case r.Severity != tt.severity || r.Check.Growing != tt.growing:
			t.Errorf("Lookup(%q): severity %v growing %v, want %v %v", tt.path, r.Severity, r.Check.Growing, tt.severity, tt.growing)
		}
	}
	for _, r := range p.Rules {
		if !slices.Contains(r.Tags, "PCI-11.5.2") || r.Hash != fim.SHA256 || r.CrossFilesystems {
			t.Errorf("rule %s: tags %v hash %v cross %v", r.Path, r.Tags, r.Hash, r.CrossFilesystems)
		}
	}
}

func TestParseSemantics(t *testing.T) {
	const src = `
version: 1
name: semantics
attribute_sets:
  # Defined before use or after: order does not matter.
  config: [+base, mtime]
  base: [+permissions, content, size]
  logs: [+growing, -xattrs]
  nothing: []
  not_growing: [+logs, -growing, size]
defaults:
  attributes: config
  hash: blake3
  severity: low
  cross_filesystems: true
  exclude: ["*.swp", cache/, /etc/mtab, /var/log/journal]  # "cache/" is the base name "cache"
  tags: [PCI-11.5.2]
  owners: [platform]
rules:
  - path: /etc/
    exclude: [backup/**, "*.swp"]
    tags: [SOX-ITGC-CM-3, PCI-11.5.2]
  - path: /var/log
    recurse: 2
    attributes: logs
    hash: sha256
    severity: critical
    cross_filesystems: false
    owners: [secops, platform]
  - path: /srv
    name: served files
    recurse: false
    attributes: [+nothing, type]
  - path: /opt
    recurse: true
    attributes: [+not_growing, mtime]
`
	p, err := Parse("semantics.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	perms := permissionAttrs
	config := perms | fim.AttrSet(fim.AttrContent) | fim.AttrSet(fim.AttrSize) | fim.AttrSet(fim.AttrMtime)
	growing, _ := lookupBuiltin("growing")
	want := []*Rule{
		{Name: "/etc", Path: "/etc", MaxDepth: -1,
			Exclude: []string{"*.swp", "cache", "/etc/mtab", "/etc/backup/**"},
			Check:   fim.Check{Attrs: config}, Hash: fim.BLAKE3, CrossFilesystems: true, Severity: SeverityLow,
			Tags: []string{"PCI-11.5.2", "SOX-ITGC-CM-3"}, Owners: []string{"platform"}},
		{Name: "/opt", Path: "/opt", MaxDepth: -1, Exclude: []string{"*.swp", "cache"},
			Check: fim.Check{Attrs: fim.AttrSet(fim.AttrSize) | fim.AttrSet(fim.AttrMtime)},
			Hash:  fim.BLAKE3, CrossFilesystems: true, Severity: SeverityLow,
			Tags: []string{"PCI-11.5.2"}, Owners: []string{"platform"}},
		{Name: "served files", Path: "/srv", MaxDepth: 0, Exclude: []string{"*.swp", "cache"},
			Check: fim.Check{Attrs: fim.AttrSet(fim.AttrType)}, Hash: fim.BLAKE3, CrossFilesystems: true,
			Severity: SeverityLow, Tags: []string{"PCI-11.5.2"}, Owners: []string{"platform"}},
		{Name: "/var/log", Path: "/var/log", MaxDepth: 2,
			Exclude: []string{"*.swp", "cache", "/var/log/journal"},
			Check:   fim.Check{Attrs: growing.Attrs.Without(fim.AttrXattrs), Growing: true},
			Hash:    fim.SHA256, Severity: SeverityCritical,
			Tags: []string{"PCI-11.5.2"}, Owners: []string{"platform", "secops"}},
	}
	if len(p.Rules) != len(want) {
		t.Fatalf("got %d rules, want %d", len(p.Rules), len(want))
	}
	for i, r := range p.Rules {
		if !r.Equal(want[i]) {
			t.Errorf("rule %d:\n got %+v\nwant %+v", i, *r, *want[i])
		}
	}
	checkRoundTrip(t, p)
}

func TestInvalidGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no invalid examples: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Parse(filepath.Base(f), data)
			var list *ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("Parse = %v, want an *ErrorList", err)
			}
			for _, e := range list.Errors {
				if e.File != filepath.Base(f) {
					t.Errorf("error %q names file %q", e, e.File)
				}
			}
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if got != string(want) {
				t.Errorf("errors differ from %s (go test -update rewrites it):\ngot:\n%swant:\n%s", golden, got, want)
			}
		})
	}
}

func TestParseTooLarge(t *testing.T) {
	data := bytes.Repeat([]byte("# padding\n"), MaxSize/10+1)
	_, err := Parse("big.yaml", data)
	var list *ErrorList
	if !errors.As(err, &list) || len(list.Errors) != 1 || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("Parse of %d bytes = %v", len(data), err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, DefaultSource(), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := Load(good)
	if err != nil || !p.Equal(Default()) {
		t.Fatalf("Load = %v, %v", p, err)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("version: 1\nname: x\nrules:\n  - path: relative\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(bad)
	if want := bad + ":4:11: path: \"relative\" is not absolute"; err == nil || err.Error() != want {
		t.Errorf("Load(bad) = %v, want %s", err, want)
	}

	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, bytes.Repeat([]byte{'#'}, MaxSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Load(big) = %v", err)
	}

	if _, err := Load(filepath.Join(dir, "missing.yaml")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want fs.ErrNotExist", err)
	}
}

func TestErrorFormat(t *testing.T) {
	tests := []struct {
		err  Error
		want string
	}{
		{Error{"p.yaml", 3, 7, "bad"}, "p.yaml:3:7: bad"},
		{Error{"p.yaml", 3, 0, "bad"}, "p.yaml:3: bad"},
		{Error{"p.yaml", 0, 0, "bad"}, "p.yaml: bad"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}

func TestTooManyErrors(t *testing.T) {
	var b strings.Builder
	b.WriteString("version: 1\nname: many\nrules:\n")
	for range 2 * maxErrors {
		b.WriteString("  - path: relative\n")
	}
	_, err := Parse("many.yaml", []byte(b.String()))
	var list *ErrorList
	if !errors.As(err, &list) || len(list.Errors) != maxErrors {
		t.Fatalf("got %v", err)
	}
	if last := list.Errors[maxErrors-1]; last.Msg != "too many errors" {
		t.Errorf("last error = %v", last)
	}
}

func TestMarshal(t *testing.T) {
	// Paths need not be UTF-8 on Linux; they travel as !!binary.
	p := ForPaths([]string{"/srv/data", "/srv/caf\xe9", "/etc/"})
	out, err := Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(out, []byte("!!binary")) {
		t.Errorf("expected a !!binary path:\n%s", out)
	}
	checkRoundTrip(t, p)

	// Strings that need quoting in some position.
	odd := []string{"yes", "No", "null", "1.5", "a: b", "a #b", "[x]", "{y}", "a,b", "-x", "*x", "&x", "!x", "'q'",
		"\"dq\"", "tab\there", "caf\u00e9", "x  y", "/p/x\xff", "@home", "%x", "|", ">", "~", "0x10"}
	var rules []*Rule
	for i, s := range odd {
		name := s
		if !utf8.ValidString(s) || strings.ContainsAny(s, "\t") || strings.Contains(s, "  ") {
			name = "rule " + strconv.Itoa(i)
		}
		rules = append(rules, &Rule{Path: "/odd/" + strconv.Itoa(i), Name: name, MaxDepth: -1, Hash: fim.SHA256,
			Exclude: []string{"/odd/" + strconv.Itoa(i) + "/" + strings.ReplaceAll(s, "/", "_")}})
	}
	oddPolicy, err := New("odd: names", rules)
	if err != nil {
		t.Fatal(err)
	}
	checkRoundTrip(t, oddPolicy)

	for name, p := range map[string]*Policy{
		"unsorted":      {Name: "x", Rules: []*Rule{{Path: "/b", Hash: fim.SHA256}, {Path: "/a", Hash: fim.SHA256}}},
		"no hash":       {Name: "x", Rules: []*Rule{{Path: "/a", Name: "/a"}}},
		"relative path": {Name: "x", Rules: []*Rule{{Path: "a", Name: "a", Hash: fim.SHA256}}},
		"no name":       {Rules: []*Rule{{Path: "/a", Name: "/a", Hash: fim.SHA256}}},
	} {
		if out, err := Marshal(p); err == nil {
			t.Errorf("%s: Marshal succeeded:\n%s", name, out)
		}
	}
}

func TestCanonicalAttributes(t *testing.T) {
	g, _ := lookupBuiltin("growing")
	for _, c := range []fim.Check{
		{}, {Growing: true}, {Attrs: fim.AllAttrs, Growing: true},
		{Attrs: g.Attrs.Without(fim.AttrContent).With(fim.AttrInode), Growing: true},
		{Attrs: fim.AttrSet(fim.AttrMtime)},
	} {
		p, err := New("attrs", []*Rule{{Path: "/x", Name: "x", MaxDepth: 3, Check: c, Hash: fim.SHA256}})
		if err != nil {
			t.Fatal(err)
		}
		checkRoundTrip(t, p)
	}
}

// TestUpdateFuzzCorpus rewrites the FuzzParse seed corpus from the valid
// and invalid examples when -update is given.
func TestUpdateFuzzCorpus(t *testing.T) {
	if !*update {
		t.Skip("run with -update to rewrite testdata/fuzz/FuzzParse")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzParse")
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	invalid, _ := filepath.Glob("testdata/invalid/*.yaml")
	seeds := examples(t)
	for _, f := range invalid {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, example{f, data})
	}
	for _, s := range seeds {
		name := strings.NewReplacer("/", "_", ".", "_", ":", "_").Replace(strings.TrimPrefix(s.name, "../../"))
		body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(s.data)) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDocErrorExamples keeps the error examples in docs/policy.md true:
// each must be a line of some golden file.
func TestDocErrorExamples(t *testing.T) {
	doc, err := os.ReadFile("../../docs/policy.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "\n## Errors\n")
	_, block, ok2 := strings.Cut(section, "```text\n")
	block, _, ok3 := strings.Cut(block, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("docs/policy.md: no text block in the Errors section")
	}
	goldens, _ := filepath.Glob("testdata/invalid/*.golden")
	var all strings.Builder
	for _, g := range goldens {
		data, err := os.ReadFile(g)
		if err != nil {
			t.Fatal(err)
		}
		all.Write(data)
	}
	lines := strings.Split(all.String(), "\n")
	for _, l := range strings.Split(strings.TrimSpace(block), "\n") {
		if !slices.Contains(lines, l) {
			t.Errorf("docs/policy.md error example is in no golden file: %s", l)
		}
	}
}

// TestDeviceNumberAttribute: rdev is named like any attribute, and every
// built-in set that compares content compares it (for a device node, which
// device it opens is its content); permissions does not.
func TestDeviceNumberAttribute(t *testing.T) {
	p, err := Parse("rdev.yaml", []byte("version: 1\nname: rdev\nrules:\n  - path: /dev\n    attributes: [rdev]\n  - path: /srv\n    attributes: [+static, -rdev]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Rules[0].Check.Attrs.String(); got != "rdev" {
		t.Errorf("[rdev] = %s", got)
	}
	if p.Rules[1].Check.Attrs.Has(fim.AttrRdev) {
		t.Error("[+static, -rdev] still has rdev")
	}
	for name, want := range map[string]bool{"everything": true, "static": true, "binaries": true, "content": true, "growing": true, "permissions": false} {
		c, ok := lookupBuiltin(name)
		if !ok || c.Attrs.Has(fim.AttrRdev) != want {
			t.Errorf("built-in set %s: has rdev = %v, want %v", name, c.Attrs.Has(fim.AttrRdev), want)
		}
	}
	checkRoundTrip(t, p)
}
