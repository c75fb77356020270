package scan

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vigilfim/vigil/internal/fim"
	"github.com/vigilfim/vigil/internal/policy"
)

// tree creates a file tree under root from a declarative spec: "d/" is a
// directory, "f=content" a file, "l->target" a symlink. Parents are made
// as needed.
func tree(t testing.TB, root string, spec ...string) {
	t.Helper()
	for _, s := range spec {
		switch {
		case strings.HasSuffix(s, "/"):
			mkdir(t, filepath.Join(root, s))
		case strings.Contains(s, "->"):
			name, target, _ := strings.Cut(s, "->")
			p := filepath.Join(root, name)
			mkdir(t, filepath.Dir(p))
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
		default:
			name, content, _ := strings.Cut(s, "=")
			p := filepath.Join(root, name)
			mkdir(t, filepath.Dir(p))
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func mkdir(t testing.TB, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

// rule returns a rule over path comparing everything with SHA-256.
func rule(path string, opts ...func(*policy.Rule)) *policy.Rule {
	r := &policy.Rule{Name: path, Path: path, MaxDepth: -1, Check: fim.Check{Attrs: fim.AllAttrs}, Hash: fim.SHA256}
	for _, o := range opts {
		o(r)
	}
	return r
}

func pol(rules ...*policy.Rule) *policy.Policy {
	slices.SortFunc(rules, func(a, b *policy.Rule) int { return fim.ComparePaths(a.Path, b.Path) })
	return &policy.Policy{Name: "test", Rules: rules}
}

// sliceOld is a baseline held in memory.
type sliceOld struct {
	entries []*fim.Entry
	i       int
}

func (s *sliceOld) Next() (*fim.Entry, uint32, error) {
	if s.i >= len(s.entries) {
		return nil, 0, io.EOF
	}
	s.i++
	return s.entries[s.i-1], uint32(s.i), nil
}

func (s *sliceOld) Totals() (int64, int64) { return int64(len(s.entries)), 0 }

// scanAll runs a scan and collects the items.
func scanAll(t testing.TB, p *policy.Policy, old []*fim.Entry, opt Options) ([]*Item, Stats) {
	t.Helper()
	var items []*Item
	var o Old
	if old != nil {
		o = &sliceOld{entries: old}
	}
	st, err := Run(context.Background(), p, o, opt, func(it *Item) error {
		cp := *it
		items = append(items, &cp)
		return nil
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return items, st
}

// baseline returns the entries of the scanned items, as a caller writing a
// new baseline would.
func baseline(items []*Item) []*fim.Entry {
	var out []*fim.Entry
	for _, it := range items {
		switch it.Status {
		case Scanned:
			out = append(out, it.New)
		case OutOfScope, Failed:
			if it.Old != nil {
				out = append(out, it.Old)
			}
		}
	}
	return out
}

// byPath indexes items by path relative to root ("." for root).
func byPath(t testing.TB, root string, items []*Item) map[string]*Item {
	t.Helper()
	m := map[string]*Item{}
	for _, it := range items {
		rel, err := filepath.Rel(root, it.Path)
		if err != nil || strings.HasPrefix(rel, "..") {
			rel = it.Path
		}
		if m[rel] != nil {
			t.Fatalf("path %q delivered twice", it.Path)
		}
		m[rel] = it
	}
	return m
}

func paths(root string, items []*Item) []string {
	var out []string
	for _, it := range items {
		rel, _ := filepath.Rel(root, it.Path)
		out = append(out, rel+":"+it.Status.String())
	}
	return out
}

func checkOrder(t testing.TB, items []*Item) {
	t.Helper()
	for i := 1; i < len(items); i++ {
		if fim.ComparePaths(items[i-1].Path, items[i].Path) >= 0 {
			t.Fatalf("item %d %q not after %q", i, items[i].Path, items[i-1].Path)
		}
	}
}
