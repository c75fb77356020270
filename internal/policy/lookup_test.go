package policy

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilfim/vigil/internal/fim"
)

// testRules is a policy exercising nesting, excludes, depth limits, a rule
// root below an excluded directory, root "/" and a sibling whose name
// extends another rule's ("/etc-old" next to "/etc").
func testRules() []*Rule {
	rule := func(path string, depth int, exclude ...string) *Rule {
		return &Rule{Name: path, Path: path, MaxDepth: depth, Exclude: exclude,
			Check: fim.Check{Attrs: fim.AllAttrs}, Hash: fim.SHA256}
	}
	return []*Rule{
		rule("/etc", -1, "*.swp", "/etc/mtab", "/etc/lvm/archive", "/etc/**/*.bak", "cache", "/etc/a*/dyn[0-9]"),
		rule("/", 1, "/proc", "/sys"),
		rule("/etc/ssh", -1),
		rule("/etc/lvm/archive/keep", -1),
		rule("/var/log", 2, "*.gz", "/var/log/journal"),
		rule("/srv/app", 0),
		rule("/etc-old", -1, "*"),
	}
}

// policies returns the test rules both compiled (New) and assembled by
// hand, so every table runs against the index and the plain fallback.
func policies(t testing.TB, rules func() []*Rule) map[string]*Policy {
	t.Helper()
	compiled, err := New("test", rules())
	if err != nil {
		t.Fatal(err)
	}
	hand := &Policy{Name: "test", Rules: rules()}
	sortRules(hand.Rules)
	return map[string]*Policy{"compiled": compiled, "hand": hand}
}

func TestLookup(t *testing.T) {
	tests := []struct {
		path string
		want string // rule path, "" for none
	}{
		{"/", "/"},
		{"/bin", "/"},
		{"/bin/ls", ""}, // deeper than MaxDepth 1
		{"/proc", ""},   // excluded
		{"/proc/1", ""},
		{"/etc", "/etc"},
		{"/etc/passwd", "/etc"},
		{"/etc/x.swp", ""},
		{"/etc/x.swp/inner", ""}, // an excluded directory excludes its subtree
		{"/etc/mtab", ""},
		{"/etc/mtab2", "/etc"},
		{"/etc/b.bak", ""}, // "**" matches no component too
		{"/etc/a/b.bak", ""},
		{"/etc/a/b.bak.txt", "/etc"},
		{"/etc/cache", ""},
		{"/etc/a/cache/x", ""},
		{"/etc/abc/dyn7", ""},
		{"/etc/abc/dynx", "/etc"},
		{"/etc/ssh", "/etc/ssh"},
		{"/etc/ssh/x.swp", "/etc/ssh"}, // the deepest rule's excludes alone apply
		{"/etc/sshd", "/etc"},
		{"/etc/lvm", "/etc"},
		{"/etc/lvm/archive", ""},
		{"/etc/lvm/archive/old", ""},
		{"/etc/lvm/archive/keep", "/etc/lvm/archive/keep"},
		{"/etc/lvm/archive/keep/a.swp", "/etc/lvm/archive/keep"},
		{"/etc-old", "/etc-old"}, // a rule's own path is never excluded
		{"/etc-old/x", ""},
		{"/var", "/"},
		{"/var/lib", ""},
		{"/var/log", "/var/log"},
		{"/var/log/syslog", "/var/log"},
		{"/var/log/apt/history.log", "/var/log"},
		{"/var/log/apt/x/y", ""},
		{"/var/log/syslog.2.gz", ""},
		{"/var/log/journal", ""},
		{"/var/log/journal/abc", ""},
		{"/var/logs", ""}, // under "/" at depth 2, not under /var/log
		{"/srv/app", "/srv/app"},
		{"/srv/app/x", ""},
		{"/srv", "/"},
	}
	for kind, p := range policies(t, testRules) {
		for _, tt := range tests {
			got := ""
			if r := p.Lookup(tt.path); r != nil {
				got = r.Path
			}
			if got != tt.want {
				t.Errorf("%s: Lookup(%q) = %q, want %q", kind, tt.path, got, tt.want)
			}
		}
	}
}

func TestDescend(t *testing.T) {
	tests := []struct {
		dir  string
		want bool
	}{
		{"/", true},
		{"/bin", false}, // at MaxDepth
		{"/proc", false},
		{"/etc", true},
		{"/etc/ssh", true},
		{"/etc/lvm", true},
		{"/etc/lvm/archive", true}, // excluded, but a rule lies below
		{"/etc/lvm/archive/other", false},
		{"/etc/lvm/archive/keep", true},
		{"/etc/x.swp", false},
		{"/etc-old", true},
		{"/etc-old/sub", false},
		{"/var", true}, // out of depth, but /var/log lies below
		{"/var/lib", false},
		{"/var/log", true},
		{"/var/log/apt", true},
		{"/var/log/apt/sub", false}, // at MaxDepth 2
		{"/var/log/journal", false},
		{"/srv", true},
		{"/srv/app", false}, // MaxDepth 0
		{"/srv/ap", false},
	}
	for kind, p := range policies(t, testRules) {
		for _, tt := range tests {
			if got := p.Descend(tt.dir); got != tt.want {
				t.Errorf("%s: Descend(%q) = %v, want %v", kind, tt.dir, got, tt.want)
			}
		}
	}
}

func TestDescendWithoutRootRule(t *testing.T) {
	rules := func() []*Rule {
		return []*Rule{
			{Path: "/usr/lib/modules", MaxDepth: -1, Hash: fim.SHA256},
			{Path: "/usr/lib", MaxDepth: 1, Hash: fim.SHA256},
		}
	}
	for kind, p := range policies(t, rules) {
		for dir, want := range map[string]bool{
			"/": true, "/usr": true, "/usr/lib": true, "/usr/lib/x": false,
			"/usr/lib/modules": true, "/usr/lib/modules/6.1": true, "/usr/libexec": false, "/opt": false,
		} {
			if got := p.Descend(dir); got != want {
				t.Errorf("%s: Descend(%q) = %v, want %v", kind, dir, got, want)
			}
		}
		if r := p.Lookup("/usr/lib/modules/6.1/kernel/a.ko"); r == nil || r.Path != "/usr/lib/modules" {
			t.Errorf("%s: module not governed by /usr/lib/modules: %v", kind, r)
		}
		if r := p.Lookup("/usr"); r != nil {
			t.Errorf("%s: Lookup(/usr) = %v, want nil", kind, r.Path)
		}
	}
}

func TestRoots(t *testing.T) {
	tests := []struct {
		paths []string
		want  []string
	}{
		{[]string{"/etc/ssh", "/etc", "/var/log", "/etc-old"}, []string{"/etc", "/etc-old", "/var/log"}},
		{[]string{"/etc", "/", "/var/log"}, []string{"/"}},
		{[]string{"/usr/lib/modules", "/usr/lib", "/usr/libexec", "/usr/bin"}, []string{"/usr/bin", "/usr/lib", "/usr/libexec"}},
		{[]string{"/a/b", "/a/c"}, []string{"/a/b", "/a/c"}},
	}
	for _, tt := range tests {
		p := ForPaths(tt.paths)
		if got := p.Roots(); !slices.Equal(got, tt.want) {
			t.Errorf("Roots(%q) = %q, want %q", tt.paths, got, tt.want)
		}
	}
}

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"*.swp", "/etc/.x.swp", true},
		{"*.swp", "/etc/x.swp/y", false}, // base name only
		{"*.swp", "/x.swpx", false},
		{"mtab", "/etc/mtab", true},
		{"mtab", "/mtab", true},
		{"mtab*", "/etc/mtab.old", true},
		{"m?ab", "/etc/mtab", true},
		{"[a-c]at", "/x/bat", true},
		{"[^a-c]at", "/x/bat", false},
		{"[^a-c]at", "/x/rat", true},
		{`\*`, "/x/*", true},
		{`\*`, "/x/a", false},
		{"*", "/", true}, // the base name of "/" is "/", like path.Base
		{"/etc/mtab", "/etc/mtab", true},
		{"/etc/mtab", "/etc/mtab/x", false}, // Match is exact; Rule.Excludes covers subtrees
		{"/etc/*", "/etc/passwd", true},
		{"/etc/*", "/etc/ssh/sshd_config", false},
		{"/etc/**", "/etc", true},
		{"/etc/**", "/etc/ssh/sshd_config", true},
		{"/etc/**/*.bak", "/etc/a.bak", true},
		{"/etc/**/*.bak", "/etc/a/b/c.bak", true},
		{"/etc/**/*.bak", "/etcx/a.bak", false},
		{"/**/cache", "/var/cache", true},
		{"/**/cache", "/cache", true},
		{"/**", "/", true},
		{"/", "/", true},
		{"/", "/etc", false},
		{"/*", "/", false},
		{"/**/a/**/b", "/x/a/y/z/b", true},
		{"/**/a/**/b", "/x/a/y/z/c", false},
		{"/**/**/a", "/a", true},
		{"log/*.gz", "/log/x.gz", true}, // relative: from "/" in Match
		{"/etc/[", "/etc/[", false},     // malformed
		{"a**b", "/ab", false},          // malformed
		{"", "/", false},
		{"/var/log/", "/var/log", true}, // trailing slash dropped
		{`\[!x`, "/[!x", true},
	}
	for _, tt := range tests {
		if got := Match(tt.pattern, tt.name); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
}

func TestCompileGlobErrors(t *testing.T) {
	for _, pat := range []string{"", "[", "/etc/[a", "a**", "/etc/**x/y", "/etc//x", "/etc/../x", "/./x",
		"x\x00", "relative/path", "a\\", "[!a]x"} {
		if _, err := compileGlob(pat); err == nil {
			t.Errorf("compileGlob(%q) succeeded, want an error", pat)
		}
	}
}

// TestIndexMatchesFallback checks the compiled index against the plain
// implementation on random paths built from the test rules' components.
func TestIndexMatchesFallback(t *testing.T) {
	ps := policies(t, testRules)
	compiled, hand := ps["compiled"], ps["hand"]
	comps := []string{"etc", "ssh", "x.swp", "a", "abc", "dyn1", "b.bak", "cache", "lvm", "archive", "keep",
		"var", "log", "journal", "x.gz", "srv", "app", "etc-old", "mtab", "proc"}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		var b strings.Builder
		for range rng.IntN(6) {
			b.WriteString("/" + comps[rng.IntN(len(comps))])
		}
		path := b.String()
		if path == "" {
			path = "/"
		}
		if got, want := compiled.Lookup(path), hand.Lookup(path); rulePath(got) != rulePath(want) {
			t.Fatalf("Lookup(%q): index %v, fallback %v", path, rulePath(got), rulePath(want))
		}
		if got, want := compiled.Descend(path), hand.Descend(path); got != want {
			t.Fatalf("Descend(%q): index %v, fallback %v", path, got, want)
		}
	}
}

// refMatch is a plain backtracking matcher, the reference for matchSegs.
func refMatch(segs []segment, name string, i, minEnd int) bool {
	if len(segs) == 0 {
		if minEnd < 0 {
			return i == len(name)
		}
		return i >= minEnd
	}
	if segs[0].kind == segDoubleStar {
		for j := i; ; j = nextBoundary(name, j) {
			if refMatch(segs[1:], name, j, minEnd) {
				return true
			}
			if j == len(name) {
				return false
			}
		}
	}
	if i == len(name) {
		return false
	}
	end := nextBoundary(name, i)
	return segs[0].match(name[i+1:end]) && refMatch(segs[1:], name, end, minEnd)
}

func TestMatchSegsAgainstReference(t *testing.T) {
	parts := []string{"a", "b", "*", "**", "a*", "?"}
	names := []string{"a", "b", "ab", "ba"}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 50000 {
		var pat, name strings.Builder
		for range 1 + rng.IntN(5) {
			pat.WriteString("/" + parts[rng.IntN(len(parts))])
		}
		for range rng.IntN(7) {
			name.WriteString("/" + names[rng.IntN(len(names))])
		}
		g, err := compileGlob(pat.String())
		if err != nil {
			t.Fatal(err)
		}
		n := name.String()
		for _, minEnd := range []int{-1, 0, 2, 4, 6} {
			if got, want := matchSegs(g.segs, n, minEnd), refMatch(g.segs, n, 0, minEnd); got != want {
				t.Fatalf("matchSegs(%q, %q, %d) = %v, reference %v", pat.String(), n, minEnd, got, want)
			}
		}
	}
}

// TestMatchDeepPath guards against backtracking blow-up: names are chosen
// by whoever can create directories.
func TestMatchDeepPath(t *testing.T) {
	deep := "/srv" + strings.Repeat("/a", 2000) + "/b"
	p, err := New("deep", []*Rule{{Path: "/srv", MaxDepth: -1, Hash: fim.SHA256,
		Exclude: []string{"/srv/**/a/**/a/**/a/**/a/**/a/**/c", "/**/a/**/a/**/a/**/x/**/y"}}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for range 10 {
		if p.Lookup(deep) == nil {
			t.Fatal("deep path excluded")
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("10 lookups of a 2000-component path took %v", d)
	}
}

func rulePath(r *Rule) string {
	if r == nil {
		return "<nil>"
	}
	return r.Path
}

func TestLookupDoesNotAllocate(t *testing.T) {
	p := Default()
	paths := benchPaths()
	allocs := testing.AllocsPerRun(100, func() {
		for _, path := range paths {
			p.Lookup(path)
			p.Descend(path)
		}
	})
	if allocs != 0 {
		t.Errorf("Lookup and Descend allocate %v times per run, want 0", allocs)
	}
}

// benchPaths is a mix of paths a scan of a Debian host meets: most under
// broad rules, some excluded, some under nested rules, some uncovered.
func benchPaths() []string {
	var paths []string
	for i := range 8 {
		paths = append(paths,
			fmt.Sprintf("/usr/lib/x86_64-linux-gnu/libfoo.so.%d", i),
			fmt.Sprintf("/usr/lib/python3/dist-packages/pkg%d/__init__.py", i),
			fmt.Sprintf("/usr/lib/modules/6.1.0-%d-amd64/kernel/drivers/net/e1000.ko", i),
			fmt.Sprintf("/usr/bin/tool%d", i),
			fmt.Sprintf("/etc/conf%d.d/file.conf", i),
			fmt.Sprintf("/etc/lvm/archive/vg_%05d.vg", i),
			fmt.Sprintf("/var/log/apt/history.log.%d.gz", i),
			fmt.Sprintf("/home/user%d/.profile", i),
		)
	}
	return append(paths, "/etc/ssh/sshd_config", "/etc/.sudoers.swp", "/var/log/syslog", "/root/.ssh/authorized_keys")
}

// BenchmarkLookup measures the per-file cost of finding the governing
// rule with the built-in policy (52 rules, with excludes).
func BenchmarkLookup(b *testing.B) {
	p := Default()
	paths := benchPaths()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		p.Lookup(paths[i%len(paths)])
		i++
	}
}

// BenchmarkLookupFallback is the same lookup without the index, for
// comparison.
func BenchmarkLookupFallback(b *testing.B) {
	p := &Policy{Name: "x", Rules: Default().Rules}
	paths := benchPaths()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		p.Lookup(paths[i%len(paths)])
		i++
	}
}

func BenchmarkDescend(b *testing.B) {
	p := Default()
	paths := benchPaths()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		p.Descend(paths[i%len(paths)])
		i++
	}
}
