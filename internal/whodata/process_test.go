package whodata

import (
	"testing"
	"time"

	"github.com/elastic/go-libaudit/v2/auparse"
)

// TestAssemblerNoHeadOfLine checks that a complete event is handed on at
// its EOE even while an older event is still incomplete, and that the
// incomplete one is handed on when it expires.
func TestAssemblerNoHeadOfLine(t *testing.T) {
	var got []uint32
	s := newAssembler(time.Second, func(msgs []*auparse.AuditMessage) { got = append(got, msgs[0].Sequence) })
	now := time.Unix(1000, 0)
	msg := func(typ auparse.AuditMessageType, seq uint32) *auparse.AuditMessage {
		return &auparse.AuditMessage{RecordType: typ, Sequence: seq}
	}
	s.push(msg(auparse.AUDIT_SYSCALL, 1), now) // never gets its EOE
	s.push(msg(auparse.AUDIT_SYSCALL, 2), now)
	s.push(msg(auparse.AUDIT_CWD, 2), now)
	s.push(msg(auparse.AUDIT_SECCOMP, 3), now) // not an event Vigil reads
	s.push(msg(auparse.AUDIT_EOE, 2), now)
	if len(got) != 1 || got[0] != 2 {
		t.Fatalf("after EOE of 2: handed on %v, want [2]", got)
	}
	s.expire(now.Add(500*time.Millisecond), false)
	if len(got) != 1 {
		t.Fatalf("expired too early: %v", got)
	}
	s.expire(now.Add(2*time.Second), false)
	if len(got) != 2 || got[1] != 1 {
		t.Fatalf("after expiry: %v, want [2 1]", got)
	}
	if len(s.events) != 0 {
		t.Errorf("%d events left", len(s.events))
	}
}

// TestIndexProcessIdentity covers which identity of a pid a change gets.
func TestIndexProcessIdentity(t *testing.T) {
	t0 := time.Unix(2000, 0)
	rec := func(life lifecycleKind, at time.Duration, exe string, att Attribution) *record {
		return &record{time: t0.Add(at), life: life, who: Who{Attribution: att, PID: 42, Exe: exe}}
	}
	tests := []struct {
		name    string
		records []*record
		until   time.Duration
		want    string // exe, "" for none
	}{
		{"exec", []*record{rec(lifeExec, 0, "/bin/sh", AttributionAudit)}, time.Second, "/bin/sh"},
		{"fork then exec", []*record{rec(lifeFork, 0, "/bin/bash", AttributionAudit), rec(lifeExec, time.Millisecond, "/bin/cp", AttributionAudit)}, time.Second, "/bin/cp"},
		// vfork: the child's exec record arrives before the parent's clone record.
		{"vfork order", []*record{rec(lifeExec, 0, "/bin/cp", AttributionAudit), rec(lifeFork, time.Millisecond, "/usr/bin/go", AttributionAudit)}, time.Second, "/bin/cp"},
		{"pid reused by a later fork", []*record{rec(lifeExec, 0, "/bin/old", AttributionAudit), rec(lifeFork, 10*time.Second, "/bin/bash", AttributionAudit)}, 11 * time.Second, "/bin/bash"},
		{"proc read raced with exec record", []*record{rec(lifeProc, time.Second, "/bin/sh", AttributionProc), rec(lifeExec, 0, "/bin/sh2", AttributionAudit)}, 2 * time.Second, "/bin/sh2"},
		{"proc read after exec record", []*record{rec(lifeExec, 0, "/bin/sh2", AttributionAudit), rec(lifeProc, time.Second, "/bin/sh", AttributionProc)}, 2 * time.Second, "/bin/sh2"},
		{"identity newer than the change", []*record{rec(lifeExec, 10*time.Second, "/bin/later", AttributionAudit)}, time.Second, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := newIndex(16)
			for _, r := range tt.records {
				x.add(r)
			}
			r, _, _ := x.lookup(Query{Path: "/f", PID: 42, Since: t0, Until: t0.Add(tt.until)}, false)
			got := ""
			if r != nil {
				got = r.who.Exe
			}
			if got != tt.want {
				t.Errorf("exe = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestIndexLogin applies a login uid set after exec.
func TestIndexLogin(t *testing.T) {
	x := newIndex(16)
	unset := UnsetID
	x.add(&record{time: time.Unix(1, 0), life: lifeExec, who: Who{Attribution: AttributionAudit, PID: 7, Exe: "/bin/sh", AUID: &unset}})
	auid, ses := uint32(1000), uint32(5)
	x.login(7, &auid, &ses, time.Unix(2, 0), &userNames{})
	x.login(8, &auid, &ses, time.Unix(2, 0), &userNames{}) // unknown pid: ignored
	r, _, _ := x.lookup(Query{PID: 7, Until: time.Unix(3, 0)}, false)
	if r == nil || r.who.AUID == nil || *r.who.AUID != 1000 || *r.who.Session != 5 || r.who.Exe != "/bin/sh" {
		t.Fatalf("after login: %+v", r)
	}
	if r, _, _ := x.lookup(Query{PID: 8, Until: time.Unix(3, 0)}, false); r != nil {
		t.Errorf("login made an identity for an unknown pid: %+v", r)
	}
}

func TestExecveArgs(t *testing.T) {
	got := execveArgs(map[string]string{"argc": "3", "a0": "sh", "a1": "-c", "a2": "echo x >> f"})
	if len(got) != 3 || got[2] != "echo x >> f" {
		t.Errorf("args = %q", got)
	}
	if got := execveArgs(map[string]string{"argc": "2", "a0": "sh"}); len(got) != 1 {
		t.Errorf("split record: %q", got)
	}
	if got := execveArgs(map[string]string{"argc": "x"}); got != nil {
		t.Errorf("bad argc: %q", got)
	}
}
