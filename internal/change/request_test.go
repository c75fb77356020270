package change

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func newRequest() Request {
	r := chg1()
	r.State, r.Approvals, r.Opened = "", nil, time.Time{}
	return r
}

func TestRequestLifecycle(t *testing.T) {
	c := compile(t, testConfig(newKeys(t).vkey))
	r, err := Open(newRequest(), opened)
	if err != nil {
		t.Fatal(err)
	}
	if r.State != StateOpen || !r.Opened.Equal(opened) {
		t.Fatalf("opened request: %+v", r)
	}
	r2, err := c.Approve(r, "bob", approve, "looks fine")
	if err != nil {
		t.Fatal(err)
	}
	if r2.State != StateApproved || len(r2.Approvals) != 1 || len(r.Approvals) != 0 {
		t.Fatalf("approve must return a new value and leave the input alone: %+v / %+v", r2, r)
	}
	if err := r2.Validate(); err != nil {
		t.Fatalf("approved request does not validate: %v", err)
	}
	r3, err := c.Approve(r2, "grace", approve.Add(time.Minute), "")
	if err != nil || len(r3.Approvals) != 2 {
		t.Fatalf("second approval: %v %+v", err, r3)
	}
	closed, err := r3.Close(t0.Add(3 * time.Hour))
	if err != nil || closed.State != StateClosed || closed.Closed == nil {
		t.Fatalf("close: %v %+v", err, closed)
	}
	if err := closed.Validate(); err != nil {
		t.Fatalf("closed request does not validate: %v", err)
	}
	rej, err := r.Reject("bob", approve, "too risky")
	if err != nil || rej.State != StateRejected || rej.Rejection.By != "bob" {
		t.Fatalf("reject: %v %+v", err, rej)
	}
	if err := rej.Validate(); err != nil {
		t.Fatalf("rejected request does not validate: %v", err)
	}
}

func TestApproveRefusals(t *testing.T) {
	c := compile(t, testConfig(newKeys(t).vkey))
	open, err := Open(newRequest(), opened)
	if err != nil {
		t.Fatal(err)
	}
	approved, _ := c.Approve(open, "bob", approve, "")
	closed, _ := approved.Close(t0)
	rejected, _ := open.Reject("bob", approve, "")
	tests := []struct {
		name string
		r    Request
		by   string
		at   time.Time
		msg  string
		as   any
	}{
		{"requester", open, "alice", approve, "alice cannot approve CHG-1: alice requested it", new(*SelfApprovalError)},
		{"implementer", open, "carol", approve, "carol cannot approve CHG-1: carol is one of its implementers", new(*SelfApprovalError)},
		{"no approving role", open, "frank", approve, "frank cannot approve CHG-1: no role of theirs allows approving", new(*NotApproverError)},
		{"unknown person", open, "mallory", approve, "mallory cannot approve CHG-1: no such person in the directory", new(*NotApproverError)},
		{"twice", approved, "bob", approve, "approve CHG-1: bob already approved it", nil},
		{"closed", closed, "grace", approve, "cannot approve CHG-1: it is closed", new(*TransitionError)},
		{"rejected", rejected, "grace", approve, "cannot approve CHG-1: it is rejected", new(*TransitionError)},
		{"before opening", open, "grace", opened.Add(-time.Hour), "predates the request", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Approve(tc.r, tc.by, tc.at, "")
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want %q", err, tc.msg)
			}
			switch target := tc.as.(type) {
			case **SelfApprovalError:
				if !errors.As(err, target) {
					t.Fatalf("err %T is not a *SelfApprovalError", err)
				}
			case **NotApproverError:
				if !errors.As(err, target) {
					t.Fatalf("err %T is not a *NotApproverError", err)
				}
			case **TransitionError:
				if !errors.As(err, target) {
					t.Fatalf("err %T is not a *TransitionError", err)
				}
			}
		})
	}
}

func TestTransitions(t *testing.T) {
	open, err := Open(newRequest(), opened)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(open, opened); err == nil {
		t.Fatal("opened twice")
	}
	closed, err := open.Close(t0)
	if err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]func() error{
		"close closed":  func() error { _, err := closed.Close(t0); return err },
		"reject closed": func() error { _, err := closed.Reject("bob", t0, ""); return err },
		"close new":     func() error { _, err := newRequest().Close(t0); return err },
	} {
		var te *TransitionError
		if err := f(); !errors.As(err, &te) {
			t.Errorf("%s: err = %v, want *TransitionError", name, err)
		}
	}
}

func TestOpenValidation(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Request)
		msg  string
	}{
		{"empty id", func(r *Request) { r.ID = " " }, "id is empty"},
		{"control char", func(r *Request) { r.Title = "a\x1b[2Jb" }, "contains control characters"},
		{"no implementers", func(r *Request) { r.Implementers = nil }, "implementers is empty"},
		{"no scope", func(r *Request) { r.Scope.Paths = nil }, "scope has no paths"},
		{"relative glob", func(r *Request) { r.Scope.Paths = []string{"etc/**"} }, `path glob "etc/**" must be absolute`},
		{"bad glob", func(r *Request) { r.Scope.Paths = []string{"/etc/[a"} }, "syntax error in pattern"},
		{"bad host glob", func(r *Request) { r.Scope.Hosts = []string{"web-[x"} }, `host glob "web-[x" is invalid`},
		{"inverted window", func(r *Request) { r.Window.End = r.Window.Start }, "window: want start before end"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRequest()
			tc.edit(&r)
			_, err := Open(r, opened)
			if !errors.Is(err, ErrInvalidRequest) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want ErrInvalidRequest with %q", err, tc.msg)
			}
		})
	}
}

func TestImportRequests(t *testing.T) {
	f, err := os.Open("testdata/requests.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	reqs, err := ImportRequests(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 2 || reqs[0].ID != "CHG-1" || reqs[1].ID != "INC-7" || !reqs[1].Emergency {
		t.Fatalf("imported %+v", reqs)
	}
	c := compile(t, testConfig(newKeys(t).vkey))
	for _, r := range reqs {
		if err := c.CheckPeople(&r); err != nil {
			t.Errorf("check people: %v", err)
		}
	}
	in := baseInput()
	in.Requests = reqs
	if v := c.Classify(in); !v.Authorized || v.By.ID != "CHG-1" {
		t.Fatalf("imported CHG-1 does not authorize the example: %+v", v)
	}
}

func TestImportRequestsErrors(t *testing.T) {
	const good = `{"id":"CHG-1","title":"t","requester":"alice","implementers":["carol"],"scope":{"paths":["/etc/app/**"]},` +
		`"window":{"start":"2026-11-23T09:00:00Z","end":"2026-11-23T12:00:00Z"},"state":"open","opened":"2026-11-23T07:00:00Z"}`
	tests := []struct {
		name, in, msg string
	}{
		{"syntax", "[\n" + good + ",\n}", "line 3, column 1: invalid character '}'"},
		{"truncated", "[\n" + good, "unexpected EOF"},
		{"not an array", good, "cannot unmarshal object"},
		{"unknown field", `[{"id":"CHG-1","colour":"red"}]`, `unknown field "colour"`},
		{"trailing data", "[" + good + "] []", "data after the JSON array"},
		{"duplicate", "[" + good + "," + good + "]", `request[1]: invalid change request "CHG-1": same ID as request[0]`},
		{"self approval", "[" + strings.Replace(good, `"state":"open"`, `"state":"approved","approvals":[{"by":"alice","at":"2026-11-23T08:00:00Z"}]`, 1) + "]",
			"alice cannot approve CHG-1: alice requested it"},
		{"approved without approval", "[" + strings.Replace(good, `"state":"open"`, `"state":"approved"`, 1) + "]", "state is approved but there is no approval"},
		{"unknown state", "[" + strings.Replace(good, `"state":"open"`, `"state":"pending"`, 1) + "]", `unknown state "pending"`},
		{"every error at once", `[{"id":"A"},{"id":"B"}]`, `request[1]: invalid change request "B"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ImportRequests(strings.NewReader(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want %q", err, tc.msg)
			}
		})
	}
	big := strings.NewReader("[" + strings.Repeat(" ", MaxImportSize) + "]")
	if _, err := ImportRequests(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("oversized import: %v", err)
	}
}

func TestCheckPeople(t *testing.T) {
	c := compile(t, testConfig(newKeys(t).vkey))
	r := chg1()
	r.Implementers = append(r.Implementers, "mallory")
	r.Approvals = append(r.Approvals, Decision{By: "frank", At: approve})
	err := c.CheckPeople(&r)
	if err == nil || !strings.Contains(err.Error(), `implementer "mallory" is not in the directory`) || !strings.Contains(err.Error(), `approver "frank" holds no approving role`) {
		t.Fatalf("err = %v", err)
	}
}
