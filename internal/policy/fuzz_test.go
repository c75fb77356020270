package policy

import (
	"errors"
	"testing"
)

// FuzzParse checks that Parse never panics, that it fails only with an
// *ErrorList, and that whatever it accepts survives Marshal and can be
// looked up. Seeds: testdata/fuzz/FuzzParse (every valid and invalid
// example; go test -run TestUpdateFuzzCorpus -update rewrites them).
func FuzzParse(f *testing.F) {
	f.Add([]byte("version: 1\nname: x\nrules:\n  - path: /\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("fuzz.yaml", data)
		if err != nil {
			var list *ErrorList
			if !errors.As(err, &list) || len(list.Errors) == 0 {
				t.Fatalf("Parse error is not a non-empty *ErrorList: %T %v", err, err)
			}
			return
		}
		out, err := Marshal(p)
		if err != nil {
			t.Fatalf("Marshal of a parsed policy: %v", err)
		}
		back, err := Parse("marshalled", out)
		if err != nil || !back.Equal(p) {
			t.Fatalf("round trip: %v\n%s", err, out)
		}
		for _, path := range []string{"/", "/etc", "/etc/x.swp", "/var/log/a/b/c"} {
			p.Lookup(path)
			p.Descend(path)
		}
		for _, r := range p.Rules {
			p.Lookup(r.Path)
			p.Descend(r.Path)
			p.Lookup(r.Path + "/x/y")
		}
	})
}

// FuzzLookup checks that the compiled index and the plain implementation
// agree on any path string, clean or not, and that neither panics.
func FuzzLookup(f *testing.F) {
	for _, p := range []string{"/", "/etc/ssh/x.swp", "/etc/lvm/archive/keep/a", "/var/log/apt/x", "", "etc", "//", "/etc/../x"} {
		f.Add(p)
	}
	ps := policies(f, testRules)
	compiled, hand := ps["compiled"], ps["hand"]
	f.Fuzz(func(t *testing.T, path string) {
		if got, want := compiled.Lookup(path), hand.Lookup(path); rulePath(got) != rulePath(want) {
			t.Fatalf("Lookup(%q): index %s, fallback %s", path, rulePath(got), rulePath(want))
		}
		if got, want := compiled.Descend(path), hand.Descend(path); got != want {
			t.Fatalf("Descend(%q): index %v, fallback %v", path, got, want)
		}
		for _, pat := range []string{"*.swp", "/etc/**/*.bak", "/**/a/**/b"} {
			Match(pat, path)
		}
	})
}
