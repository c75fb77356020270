package monitor

import (
	"io"
	"strings"
	"testing"

	"github.com/vigilfim/vigil/internal/fim"
)

func entries(paths ...string) []*fim.Entry {
	var es []*fim.Entry
	for _, p := range paths {
		es = append(es, &fim.Entry{Path: p, Type: fim.TypeFile})
	}
	return es
}

func drain(t *testing.T, o interface {
	Next() (*fim.Entry, uint32, error)
}) string {
	t.Helper()
	var out []string
	for {
		e, tag, err := o.Next()
		if err == io.EOF {
			return strings.Join(out, " ")
		}
		if err != nil {
			t.Fatal(err)
		}
		s := e.Path
		if e.Size != 0 {
			s += "*"
		}
		if tag != 0 {
			s += "#"
		}
		out = append(out, s)
	}
}

func TestOverlayMerge(t *testing.T) {
	changed := &fim.Entry{Path: "/a/b", Type: fim.TypeFile, Size: 1}
	added := &fim.Entry{Path: "/a/b!", Type: fim.TypeFile, Size: 1}
	addedFirst := &fim.Entry{Path: "/0", Type: fim.TypeFile, Size: 1}
	addedLast := &fim.Entry{Path: "/z", Type: fim.TypeFile, Size: 1}
	for _, tc := range []struct {
		name    string
		base    []string
		overlay map[string]*fim.Entry
		want    string
	}{
		{"empty overlay", []string{"/a", "/a/b", "/a/c"}, nil, "/a /a/b# /a/c#"},
		{"replace", []string{"/a", "/a/b", "/a/c"}, map[string]*fim.Entry{"/a/b": changed}, "/a /a/b*# /a/c#"},
		{"remove", []string{"/a", "/a/b", "/a/c"}, map[string]*fim.Entry{"/a/b": nil}, "/a /a/c#"},
		{"add in walk order", []string{"/a", "/a/b", "/a/b/c", "/a/c"}, map[string]*fim.Entry{"/a/b!": added}, "/a /a/b# /a/b/c# /a/b!* /a/c#"},
		{"add before and after all", []string{"/a"}, map[string]*fim.Entry{"/0": addedFirst, "/z": addedLast}, "/0* /a /z*"},
		{"remove everything", []string{"/a"}, map[string]*fim.Entry{"/a": nil}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			es := entries(tc.base...)
			tags := make([]uint32, len(es))
			for i := 1; i < len(tags); i++ {
				tags[i] = 1
			}
			m := &Monitor{overlay: tc.overlay}
			if m.overlay == nil {
				m.overlay = map[string]*fim.Entry{}
			}
			var keys []string
			for k := range m.overlay {
				keys = append(keys, k)
			}
			sortPaths(keys)
			var o interface {
				Next() (*fim.Entry, uint32, error)
			} = &sliceOld{es: es, tags: tags}
			if len(keys) > 0 {
				o = newOverlayOld(o, keys, m.overlay)
			}
			if got := drain(t, o); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}
