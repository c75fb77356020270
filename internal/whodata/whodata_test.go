package whodata

import (
	"bufio"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/elastic/go-libaudit/v2/auparse"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestContainerID(t *testing.T) {
	id := strings.Repeat("0123456789abcdef", 4)
	tests := []struct{ cgroup, want string }{
		{"/system.slice/docker-" + id + ".scope", id},
		{"/docker/" + id, id},
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234_5678.slice/cri-containerd-" + id + ".scope", id},
		{"/kubepods/burstable/pod12345678-aaaa-bbbb-cccc-123456789012/" + id, id},
		{"/machine.slice/libpod-" + id + ".scope/container", id},
		{"/machine.slice/libpod-conmon-" + id + ".scope", ""},
		{"/system.slice/crio-" + id + ".scope", id},
		{"/user.slice/user-1000.slice/session-3.scope", ""},
		{"/", ""},
		{"/docker/" + strings.ToUpper(id), ""},
		{"/docker/" + id[:63], ""},
	}
	for _, tt := range tests {
		if got := ContainerID(tt.cgroup); got != tt.want {
			t.Errorf("ContainerID(%q) = %q, want %q", tt.cgroup, got, tt.want)
		}
	}
}

func TestCgroupPath(t *testing.T) {
	id := strings.Repeat("ab", 32)
	tests := []struct{ name, contents, want string }{
		{"v2", "0::/system.slice/ssh.service\n", "/system.slice/ssh.service"},
		{"v1 container", "12:pids:/docker/" + id + "\n1:name=systemd:/docker/" + id + "\n", "/docker/" + id},
		{"v1 host", "12:pids:/user.slice\n1:name=systemd:/user.slice/session-1.scope\n", "/user.slice/session-1.scope"},
		{"garbage", "nonsense\n", ""},
	}
	for _, tt := range tests {
		if got := cgroupPath(tt.contents); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestTTY(t *testing.T) {
	tests := []struct {
		nr   uint32
		want string
	}{
		{136<<8 | 0, "pts/0"},
		{136<<8 | 5, "pts/5"},
		{137<<8 | 1, "pts/257"},
		{4<<8 | 1, "tty1"},
		{4<<8 | 64, "ttyS0"},
		{5<<8 | 1, "console"},
		{1<<8 | 3, "1:3"},
	}
	for _, tt := range tests {
		if got := ttyName(tt.nr); got != tt.want {
			t.Errorf("ttyName(%d) = %q, want %q", tt.nr, got, tt.want)
		}
	}
	stat := "1234 (a (weird) name) S 1 1234 1234 34816 1234 4194560 0 0"
	if got := ttyFromStat(stat); got != "pts/0" {
		t.Errorf("ttyFromStat = %q", got)
	}
	for in, want := range map[string]string{"pts3": "pts/3", "(none)": "", "tty1": "tty1"} {
		if got := ttyFromAudit(in); got != want {
			t.Errorf("ttyFromAudit(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestProcReader reads a fake /proc from testdata.
func TestProcReader(t *testing.T) {
	w, err := procReader{root: "testdata/proc"}.read(4242)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.MarshalIndent(w, "", "  ")
	golden(t, "testdata/proc/4242.golden.json", got)
	if _, err := (procReader{root: "testdata/proc"}).read(1); err == nil {
		t.Error("read of a missing process succeeded")
	}
}

// TestParseRecord parses captured audit messages (a short-lived shell
// appending to a file, then mv renaming it) into records.
func TestParseRecord(t *testing.T) {
	events := readCapture(t, "testdata/audit/write-rename.txt")
	var recs []*record
	for _, msgs := range events {
		if r := parseRecord(msgs, "vigil-watch"); r != nil {
			recs = append(recs, r)
		}
		if r := parseRecord(msgs, "someone-else"); r != nil {
			t.Errorf("record with another key accepted: %+v", r)
		}
	}
	type out struct {
		Time  time.Time
		Paths []string
		Who   Who
	}
	var o []out
	for _, r := range recs {
		o = append(o, out{r.time.UTC(), r.paths, r.who})
	}
	got, _ := json.MarshalIndent(o, "", "  ")
	golden(t, "testdata/audit/write-rename.golden.json", got)
}

func readCapture(t testing.TB, name string) [][]*auparse.AuditMessage {
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var events [][]*auparse.AuditMessage
	var cur []*auparse.AuditMessage
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		typ, data, _ := strings.Cut(sc.Text(), " ")
		n, _ := strconv.Atoi(typ)
		m, err := auparse.Parse(auparse.AuditMessageType(n), data)
		if err != nil {
			t.Fatalf("parse %q: %v", sc.Text(), err)
		}
		if m.RecordType == auparse.AUDIT_EOE {
			events = append(events, cur)
			cur = nil
			continue
		}
		cur = append(cur, m)
	}
	return events
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(name, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs:\n%s", name, got)
	}
}

func TestIndexLookup(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rec := func(pid int, sec int, paths ...string) *record {
		return &record{time: t0.Add(time.Duration(sec) * time.Second), who: Who{PID: pid}, paths: paths}
	}
	x := newIndex(4)
	x.add(rec(10, 0, "/a"))
	x.add(rec(11, 100, "/a"))
	x.add(rec(12, 100, "/link/b"))
	q := func(path string, pid, sec int) Query {
		at := t0.Add(time.Duration(sec) * time.Second)
		return Query{Path: path, PID: pid, Since: at, Until: at}
	}
	tests := []struct {
		name    string
		q       Query
		wantPID int
		wantOld bool
	}{
		{"same pid and path, long ago", q("/a", 10, 100), 10, true},
		{"path only, newest in window", q("/a", 0, 100), 11, false},
		{"path only, outside window", q("/a", 0, 500), 0, false},
		{"other pid never used", q("/a", 99, 100), 0, false},
		{"pid within window, other spelling", q("/real/b", 12, 101), 12, false},
		{"pid outside window, other spelling", q("/real/b", 12, 200), 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, old, w := x.lookup(tt.q, false)
			if w != nil {
				t.Error("waiter returned without wait")
			}
			pid := 0
			if r != nil {
				pid = r.who.PID
			}
			if pid != tt.wantPID || old != tt.wantOld {
				t.Errorf("got pid %d old %v, want %d %v", pid, old, tt.wantPID, tt.wantOld)
			}
		})
	}
	// The ring evicts the oldest record and unlinks it.
	x.add(rec(13, 200, "/c"))
	x.add(rec(14, 200, "/d"))
	if r, _ := x.find(q("/a", 10, 100)); r != nil {
		t.Errorf("evicted record still found: %+v", r)
	}
	if len(x.byPath["/a"]) != 1 {
		t.Errorf("byPath[/a] = %d records, want 1", len(x.byPath["/a"]))
	}
	// A waiter is woken by a record for its path.
	_, _, w := x.lookup(q("/e", 0, 200), true)
	x.add(rec(15, 200, "/e"))
	select {
	case <-w.c:
	default:
		t.Error("waiter not woken")
	}
	x.cancelWait(q("/e", 0, 200), w)
	if len(x.waiters) != 0 {
		t.Errorf("waiters left: %v", x.waiters)
	}
}

func TestHasRuleKey(t *testing.T) {
	for text, want := range map[string]bool{
		"-w /etc -p wa -k vigil-watch":                             true,
		"-a always,exit -F dir=/etc -F perm=wa -F key=vigil-watch": true,
		"-w /etc -p wa -k vigil-watch-other":                       false,
		"-w /etc -p wa -k other":                                   false,
	} {
		if got := hasRuleKey(text, "vigil-watch"); got != want {
			t.Errorf("hasRuleKey(%q) = %v", text, got)
		}
	}
}

func TestWhoJSON(t *testing.T) {
	root := uint32(0)
	w := &Who{Attribution: AttributionAudit, PID: 7, UID: &root, AUID: ptr(UnsetID), Cmdline: []string{"sh", "-c", "x"}}
	b, _ := json.Marshal(w)
	want := `{"attribution":"audit","pid":7,"uid":0,"auid":4294967295,"cmdline":["sh","-c","x"]}`
	if string(b) != want {
		t.Errorf("got %s\nwant %s", b, want)
	}
	c := w.Clone()
	*c.UID = 5
	c.Cmdline[0] = "bash"
	if *w.UID != 0 || w.Cmdline[0] != "sh" {
		t.Error("Clone shares state")
	}
	b, _ = json.Marshal(Unavailable("no audit"))
	if string(b) != `{"attribution":"unavailable","reason":"no audit"}` {
		t.Errorf("unavailable: %s", b)
	}
}

func FuzzContainerID(f *testing.F) {
	f.Add("/system.slice/docker-" + strings.Repeat("ab", 32) + ".scope")
	f.Add("/kubepods/burstable/pod1/" + strings.Repeat("0", 64))
	f.Fuzz(func(t *testing.T, s string) {
		id := ContainerID(s)
		if id != "" && (!isHex64(id) || !strings.Contains(s, id)) {
			t.Fatalf("ContainerID(%q) = %q", s, id)
		}
		_ = cgroupPath(s)
	})
}

func FuzzParseRecord(f *testing.F) {
	for _, msgs := range readCapture(f, "testdata/audit/write-rename.txt") {
		var lines []string
		for _, m := range msgs {
			lines = append(lines, strconv.Itoa(int(m.RecordType))+" "+m.RawData)
		}
		f.Add(strings.Join(lines, "\n"))
	}
	f.Fuzz(func(t *testing.T, s string) {
		var msgs []*auparse.AuditMessage
		for _, line := range strings.Split(s, "\n") {
			typ, data, _ := strings.Cut(line, " ")
			n, err := strconv.Atoi(typ)
			if err != nil {
				continue
			}
			if m, err := auparse.Parse(auparse.AuditMessageType(n), data); err == nil {
				msgs = append(msgs, m)
			}
		}
		r := parseRecord(msgs, "vigil-watch")
		if r == nil {
			return
		}
		if len(r.paths) > maxRecordPaths {
			t.Fatalf("%d paths", len(r.paths))
		}
		for _, p := range r.paths {
			if !filepath.IsAbs(p) || filepath.Clean(p) != p {
				t.Fatalf("path %q not absolute and clean", p)
			}
		}
		_ = slices.Clone(r.who.Cmdline)
	})
}
