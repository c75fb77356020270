//go:build linux

package scan

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/vigilfim/vigil/internal/fim"
	"github.com/vigilfim/vigil/internal/fsys"
	"github.com/vigilfim/vigil/internal/policy"
)

func TestOrderMatchesComparePaths(t *testing.T) {
	root := t.TempDir()
	tree(t, root, "a/b/c=1", "a!=2", "a.b=3", "a b=4", "a-/x=5", "\xff\xfe=6", "a/b!=7", "a/b.c/d=8",
		"A=9", "new\nline=10", "a/l->b", "z/")
	items, st := scanAll(t, pol(rule(root)), nil, Options{})
	checkOrder(t, items)

	var want []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		want = append(want, p)
		return err
	})
	slices.SortFunc(want, fim.ComparePaths)
	var got []string
	for _, it := range items {
		got = append(got, it.Path)
		if it.Status != Scanned || it.New == nil || it.Err != nil {
			t.Errorf("%q: status %v err %v", it.Path, it.Status, it.Err)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("paths:\n got %q\nwant %q", got, want)
	}
	if st.Scanned != int64(len(want)) || st.Files != 10 || st.Hashed != 10 {
		t.Errorf("stats = %+v", st)
	}
	m := byPath(t, root, items)
	if it := m["a/l"]; it.New.Type != fim.TypeSymlink || it.New.LinkTarget != "b" || !it.New.Content.IsZero() {
		t.Errorf("symlink item = %+v", it.New)
	}
	if it := m["a/b/c"]; !it.Rehashed || it.New.Content.String() != "sha256:6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b" {
		t.Errorf("content of a/b/c = %v", it.New.Content)
	}
}

func TestMergeStatuses(t *testing.T) {
	root := t.TempDir()
	tree(t, root, "keep=1", "gone=2", "dir/x=3", "dir/y=4", "olddir/p=5", "olddir/q/r=6")
	p := pol(rule(root))
	items, _ := scanAll(t, p, nil, Options{})
	base := baseline(items)
	// Baseline entries outside the policy's roots are out of scope.
	outside := &fim.Entry{Path: "/zzz-not-in-policy", Type: fim.TypeFile}
	before := &fim.Entry{Path: "/", Type: fim.TypeDir}
	base = append([]*fim.Entry{before}, append(base, outside)...)

	os.Remove(filepath.Join(root, "gone"))
	os.RemoveAll(filepath.Join(root, "olddir"))
	tree(t, root, "added=7", "dir/z=8", "olddir=now a file")

	items, st := scanAll(t, p, base, Options{})
	checkOrder(t, items)
	want := map[string]Status{
		".": Scanned, "keep": Scanned, "gone": Missing, "dir": Scanned, "dir/x": Scanned, "dir/y": Scanned,
		"dir/z": Scanned, "added": Scanned, "olddir": Scanned, "olddir/p": Missing, "olddir/q": Missing,
		"olddir/q/r": Missing, "/zzz-not-in-policy": OutOfScope, "/": OutOfScope,
	}
	m := byPath(t, root, items)
	if len(m) != len(want) {
		t.Errorf("got %q", paths(root, items))
	}
	for rel, st := range want {
		it := m[rel]
		if it == nil || it.Status != st {
			t.Errorf("%s: got %+v, want %v", rel, it, st)
			continue
		}
		if (st == Missing || st == OutOfScope) && (it.Old == nil || it.New != nil) {
			t.Errorf("%s: %v item with Old %v New %v", rel, st, it.Old, it.New)
		}
	}
	if m["added"].Old != nil || m["keep"].Old == nil || m["keep"].OldTag == 0 {
		t.Errorf("old side: added %v keep %v", m["added"].Old, m["keep"].Old)
	}
	if st.Missing != 4 || st.OutOfScope != 2 {
		t.Errorf("stats = %+v", st)
	}
}

func TestRootMissing(t *testing.T) {
	root := t.TempDir()
	tree(t, root, "r/a=1", "r/b/c=2")
	p := pol(rule(filepath.Join(root, "r")))
	items, _ := scanAll(t, p, nil, Options{})
	os.RemoveAll(filepath.Join(root, "r"))
	items, st := scanAll(t, p, baseline(items), Options{})
	if st.Missing != 4 || st.Scanned != 0 || len(items) != 4 {
		t.Fatalf("got %q, stats %+v", paths(root, items), st)
	}
	items, _ = scanAll(t, p, nil, Options{})
	if len(items) != 0 {
		t.Fatalf("missing root produced %q", paths(root, items))
	}
}

func TestReuseAndRehash(t *testing.T) {
	root := t.TempDir()
	tree(t, root, "same=aaaa", "forged=bbbb", "blake=cccc")
	p := pol(rule(root))
	items, _ := scanAll(t, p, nil, Options{})
	base := baseline(items)

	// Rewrite "forged" with content of the same size and put its mtime
	// back, as touch -r would: ctime still moves.
	f := filepath.Join(root, "forged")
	fi, _ := os.Stat(f)
	os.WriteFile(f, []byte("BBBB"), 0o644)
	os.Chtimes(f, fi.ModTime(), fi.ModTime())

	items, st := scanAll(t, p, base, Options{})
	m := byPath(t, root, items)
	if it := m["same"]; it.Rehashed || !it.New.Content.Equal(it.Old.Content) {
		t.Errorf("unchanged file: rehashed %v", it.Rehashed)
	}
	it := m["forged"]
	if !it.Rehashed || it.New.Mtime != it.Old.Mtime || it.New.Content.Equal(it.Old.Content) {
		t.Errorf("forged mtime: rehashed %v, content %v -> %v", it.Rehashed, it.Old.Content, it.New.Content)
	}
	if d := fim.Diff(it.Old, it.New, it.Rule.Check, it.Prefix); !d.Has(fim.AttrContent) || !d.Has(fim.AttrCtime) || d.Has(fim.AttrMtime) {
		t.Errorf("diff = %v", d)
	}
	if st.Hashed != 1 || st.Reused != 2 {
		t.Errorf("stats = %+v", st)
	}

	// Full re-hashes everything.
	items, st = scanAll(t, p, baseline(items), Options{Full: true})
	if st.Hashed != 3 || st.Reused != 0 {
		t.Errorf("Full: stats = %+v", st)
	}
	// A change of algorithm can't reuse digests.
	p2 := pol(rule(root, func(r *policy.Rule) { r.Hash = fim.BLAKE3 }))
	items, st = scanAll(t, p2, baseline(items), Options{})
	if st.Hashed != 3 || byPath(t, root, items)["same"].New.Content.Alg != fim.BLAKE3 {
		t.Errorf("new algorithm: stats = %+v", st)
	}
	// Without content in the check nothing is hashed.
	p3 := pol(rule(root, func(r *policy.Rule) { r.Check.Attrs = r.Check.Attrs.Without(fim.AttrContent) }))
	if _, st = scanAll(t, p3, nil, Options{}); st.Hashed != 0 || st.Reused != 0 {
		t.Errorf("no content: stats = %+v", st)
	}
}

func TestLimit(t *testing.T) {
	root := t.TempDir()
	tree(t, root, "a/1=1", "a/2=2", "b/1=1", "b/sub/2=2", "c=3", "x/y/z=4")
	excl := rule(root, func(r *policy.Rule) { r.Exclude = []string{filepath.Join(root, "x")} })
	p := pol(excl)
	items, _ := scanAll(t, p, nil, Options{})
	base := baseline(items)
	os.Remove(filepath.Join(root, "b/1"))
	os.WriteFile(filepath.Join(root, "a/1"), []byte("changed"), 0o644)

	items, _ = scanAll(t, p, base, Options{Limit: []string{filepath.Join(root, "b"), filepath.Join(root, "b/sub"), filepath.Join(root, "x/y")}})
	checkOrder(t, items)
	if len(items) != len(base) {
		t.Fatalf("got %q", paths(root, items))
	}
	for _, it := range items {
		rel, _ := filepath.Rel(root, it.Path)
		want := OutOfScope
		switch rel {
		case "b", "b/sub", "b/sub/2":
			want = Scanned
		case "b/1":
			want = Missing
		}
		if it.Status != want {
			t.Errorf("%s: %v, want %v", rel, it.Status, want)
		}
	}
	if _, err := Run(context.Background(), p, nil, Options{Limit: []string{"relative"}}, func(*Item) error { return nil }); err == nil {
		t.Error("relative limit accepted")
	}
}

func TestExcludesNestedAndDepth(t *testing.T) {
	root := t.TempDir()
	tree(t, root, "etc/a.conf=1", "etc/a.swp=2", "etc/cache/big=3", "etc/cache/keep/k=4",
		"etc/deep/1/2/3=5", "var/log/x=6")
	p := pol(
		rule(filepath.Join(root, "etc"), func(r *policy.Rule) {
			r.Exclude = []string{"*.swp", filepath.Join(root, "etc/cache")}
		}),
		// A rule whose root lies below an excluded directory is still walked.
		rule(filepath.Join(root, "etc/cache/keep")),
		// Depth 1: the root and its children only.
		rule(filepath.Join(root, "etc/deep"), func(r *policy.Rule) { r.MaxDepth = 1 }),
	)
	items, _ := scanAll(t, p, nil, Options{})
	checkOrder(t, items)
	got := paths(root, items)
	want := []string{"etc:scanned", "etc/a.conf:scanned", "etc/cache/keep:scanned", "etc/cache/keep/k:scanned",
		"etc/deep:scanned", "etc/deep/1:scanned"}
	if !slices.Equal(got, want) {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	m := byPath(t, root, items)
	if m["etc/cache/keep/k"].Rule.Path != filepath.Join(root, "etc/cache/keep") || m["etc/a.conf"].Rule.Path != filepath.Join(root, "etc") {
		t.Error("wrong governing rule")
	}

	// Baseline entries now excluded or too deep are out of scope.
	full := pol(rule(filepath.Join(root, "etc")))
	items, _ = scanAll(t, full, nil, Options{})
	items, _ = scanAll(t, p, baseline(items), Options{})
	for _, it := range items {
		rel, _ := filepath.Rel(root, it.Path)
		if want := slices.Contains(want, rel+":scanned"); want != (it.Status == Scanned) || !want && it.Status != OutOfScope {
			t.Errorf("%s: %v", rel, it.Status)
		}
	}
}

func TestGrowing(t *testing.T) {
	root := t.TempDir()
	tree(t, root, "app.log=line 1\n")
	p := pol(rule(root, func(r *policy.Rule) { r.Check.Growing = true }))
	items, _ := scanAll(t, p, nil, Options{})
	base := baseline(items)
	log := filepath.Join(root, "app.log")

	f, _ := os.OpenFile(log, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("line 2\n")
	f.Close()
	items, _ = scanAll(t, p, base, Options{})
	it := byPath(t, root, items)["app.log"]
	if !it.Rehashed || !it.Prefix.Equal(it.Old.Content) || it.New.Content.Equal(it.Old.Content) {
		t.Fatalf("appended log: prefix %v old %v", it.Prefix, it.Old.Content)
	}
	if _, changed := fim.Compare(it.Old, it.New, it.Rule.Check, it.Prefix); changed {
		t.Errorf("appending to a growing file reported as a change")
	}
	base = baseline(items)

	// Rewriting the old part is a content change even though it grew.
	os.WriteFile(log, []byte("LINE 1\nline 2\nline 3\n"), 0o644)
	items, _ = scanAll(t, p, base, Options{})
	it = byPath(t, root, items)["app.log"]
	if c, changed := fim.Compare(it.Old, it.New, it.Rule.Check, it.Prefix); !changed || !c.Changed.Has(fim.AttrContent) {
		t.Errorf("rewritten log: change %+v %v", c, changed)
	}
}

func TestSymlinksNotFollowed(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	tree(t, outside, "secret=s")
	tree(t, root, "d/f=1", "todir->d", "out->"+outside, "dangling->nowhere")
	items, _ := scanAll(t, pol(rule(root)), nil, Options{})
	for _, it := range items {
		if fim.IsWithin(it.Path, outside) || filepath.Dir(it.Path) != root && filepath.Dir(it.Path) != filepath.Join(root, "d") && it.Path != root {
			t.Errorf("walked through a symlink to %q", it.Path)
		}
	}
	// A symlink as a rule's root is recorded, not followed.
	items, _ = scanAll(t, pol(rule(filepath.Join(root, "out"))), nil, Options{})
	if len(items) != 1 || items[0].New.Type != fim.TypeSymlink {
		t.Errorf("symlink root: %q", paths(root, items))
	}
}

func TestSpecialFiles(t *testing.T) {
	root := t.TempDir()
	tree(t, root, "f=1")
	if err := mkfifo(filepath.Join(root, "fifo")); err != nil {
		t.Fatal(err)
	}
	items, st := scanAll(t, pol(rule(root)), nil, Options{})
	it := byPath(t, root, items)["fifo"]
	if it.Status != Scanned || it.New.Type != fim.TypeFIFO || !it.New.Content.IsZero() || st.Failed != 0 {
		t.Errorf("fifo: %+v", it)
	}
}

func TestOneFilesystem(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts a tmpfs")
	}
	root := t.TempDir()
	tree(t, root, "a=1", "mnt/", "nested/")
	mnt := filepath.Join(root, "mnt")
	if err := mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("can't mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unmount(mnt) })
	tree(t, mnt, "inner/x=2", "y=3")

	items, _ := scanAll(t, pol(rule(root)), nil, Options{})
	got := paths(root, items)
	if want := []string{".:scanned", "a:scanned", "mnt:scanned", "nested:scanned"}; !slices.Equal(got, want) {
		t.Errorf("one file system: got %q, want %q", got, want)
	}
	items, _ = scanAll(t, pol(rule(root, func(r *policy.Rule) { r.CrossFilesystems = true })), nil, Options{})
	if len(items) != 7 {
		t.Errorf("crossing: got %q", paths(root, items))
	}
	// A rule naming a path on the other file system is walked, while the
	// outer rule still doesn't record the rest of that file system.
	items, _ = scanAll(t, pol(rule(root), rule(filepath.Join(mnt, "inner"))), nil, Options{})
	got = paths(root, items)
	if want := []string{".:scanned", "a:scanned", "mnt:scanned", "mnt/inner:scanned", "mnt/inner/x:scanned", "nested:scanned"}; !slices.Equal(got, want) {
		t.Errorf("nested rule on another fs: got %q, want %q", got, want)
	}
	items, _ = scanAll(t, pol(rule(root), rule(mnt)), nil, Options{})
	if len(items) != 7 {
		t.Errorf("rule at the mount point: got %q", paths(root, items))
	}
}

func TestVanishingFiles(t *testing.T) {
	root := t.TempDir()
	var spec []string
	for i := range 600 {
		spec = append(spec, filepath.Join("d"+string(rune('a'+i%10)), "f"+string(rune('a'+i%26))+string(rune('a'+i/26%26))+"=x"))
	}
	tree(t, root, spec...)
	p := pol(rule(root))
	items, _ := scanAll(t, p, nil, Options{})
	base := baseline(items)
	// Delete the whole tree while the scan runs; the order in which the
	// walker, workers and deletions interleave varies, but the scan must
	// finish with every item well-formed.
	var n int
	_, err := Run(context.Background(), p, &sliceOld{entries: base}, Options{Workers: 3}, func(it *Item) error {
		n++
		if n == 3 {
			os.RemoveAll(filepath.Join(root, "da"))
			os.RemoveAll(filepath.Join(root, "db"))
			os.RemoveAll(filepath.Join(root, "dj"))
		}
		switch it.Status {
		case Scanned:
			if it.New == nil || it.Err != nil {
				t.Errorf("%s: scanned without entry or with error %v", it.Path, it.Err)
			}
		case Missing:
			if it.Old == nil {
				t.Errorf("%s: missing without old", it.Path)
			}
		case Failed:
			if it.Err == nil {
				t.Errorf("%s: failed without error", it.Path)
			}
		default:
			t.Errorf("%s: %v", it.Path, it.Status)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestCancelAndFnError(t *testing.T) {
	root := t.TempDir()
	var spec []string
	for i := range 1000 {
		spec = append(spec, filepath.Join("d"+string(rune('a'+i%7)), "f"+string(rune('a'+i%26))+string(rune('a'+i/26%26))+string(rune('a'+i/676))+"=x"))
	}
	tree(t, root, spec...)
	p := pol(rule(root))
	items, _ := scanAll(t, p, nil, Options{})
	base := baseline(items)

	goroutines := runtime.NumGoroutine()
	fds := openFDs(t)

	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	_, err := Run(ctx, p, &sliceOld{entries: base}, Options{Full: true}, func(*Item) error {
		if n++; n == 100 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled scan returned %v", err)
	}

	boom := errors.New("boom")
	n = 0
	_, err = Run(context.Background(), p, &sliceOld{entries: base}, Options{Full: true}, func(*Item) error {
		if n++; n == 50 {
			return boom
		}
		return nil
	})
	if err != boom {
		t.Errorf("fn error: Run returned %v", err)
	}

	// Run waits for everything it started: nothing is left behind. The
	// runtime's finalizer goroutine counts while it runs a finalizer, so
	// give it a moment to go quiet, as goleak does.
	for i := 0; i < 100 && runtime.NumGoroutine() > goroutines; i++ {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > goroutines {
		t.Errorf("goroutines: %d before, %d after", goroutines, g)
	}
	if f := openFDs(t); f != fds {
		t.Errorf("open descriptors: %d before, %d after", fds, f)
	}
}

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(ents)
}

func TestOldOutOfOrder(t *testing.T) {
	root := t.TempDir()
	tree(t, root, "a=1", "b=2")
	old := []*fim.Entry{{Path: filepath.Join(root, "b")}, {Path: filepath.Join(root, "a")}}
	_, err := Run(context.Background(), pol(rule(root)), &sliceOld{entries: old}, Options{}, func(*Item) error { return nil })
	if !errors.Is(err, ErrOldOrder) {
		t.Fatalf("Run = %v; want ErrOldOrder", err)
	}
}

func TestProgress(t *testing.T) {
	root := t.TempDir()
	tree(t, root, "a=12345", "b/c=1")
	var last Progress
	calls := 0
	_, err := Run(context.Background(), pol(rule(root)), &sliceOld{}, Options{Progress: func(p Progress) { last = p; calls++ }}, func(*Item) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if calls == 0 || last.Entries != 4 || last.Files != 2 || last.Bytes != 6 || last.BytesHashed != 6 || last.Elapsed <= 0 || last.Elapsed > time.Hour {
		t.Errorf("last progress %+v after %d calls", last, calls)
	}
}

// Long paths beyond PATH_MAX are walked through directory descriptors.
func TestDeepTree(t *testing.T) {
	root := t.TempDir()
	d, err := fsys.OpenDir(root)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	name := string(slices.Repeat([]byte("d"), 200))
	p := root
	for range 30 {
		p = filepath.Join(p, name)
	}
	// MkdirAll fails past PATH_MAX, so build it step by step with chdir.
	if err := mkdirDeep(root, name, 30); err != nil {
		t.Skipf("can't build deep tree: %v", err)
	}
	items, st := scanAll(t, pol(rule(root)), nil, Options{})
	if st.Failed != 0 || len(items) != 32 || items[len(items)-1].New.Type != fim.TypeFile {
		for _, it := range items {
			if it.Err != nil {
				t.Log(it.Err)
			}
		}
		t.Fatalf("deep tree: %d items, stats %+v", len(items), st)
	}
}

func TestLimitToFileAndMissingPath(t *testing.T) {
	root := t.TempDir()
	tree(t, root, "a/f=1", "a/g=2", "b=3")
	p := pol(rule(root))
	items, _ := scanAll(t, p, nil, Options{})
	base := baseline(items)
	os.Remove(filepath.Join(root, "b"))

	items, _ = scanAll(t, p, base, Options{Limit: []string{filepath.Join(root, "a/f"), filepath.Join(root, "b"), filepath.Join(root, "nope")}})
	checkOrder(t, items)
	got := paths(root, items)
	want := []string{".:out-of-scope", "a:out-of-scope", "a/f:scanned", "a/g:out-of-scope", "b:missing"}
	if !slices.Equal(got, want) {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	// A limit outside every rule walks nothing.
	items, _ = scanAll(t, p, base, Options{Limit: []string{"/nonexistent-vigil-test"}})
	for _, it := range items {
		if it.Status != OutOfScope {
			t.Errorf("%s: %v", it.Path, it.Status)
		}
	}
}
