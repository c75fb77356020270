package change

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilfim/vigil/internal/change/manifest"
	"github.com/vigilfim/vigil/internal/fim"
)

func TestClassify(t *testing.T) {
	k := newKeys(t)
	c := compile(t, testConfig(k.vkey))

	good, err := openManifest(t, c, k.signer, appManifest())
	if err != nil {
		t.Fatal(err)
	}
	authorOnly := appManifest()
	authorOnly.Run, authorOnly.Reviewers = "413", []string{"erin"}
	selfReviewed, err := openManifest(t, c, k.signer, authorOnly)
	if err != nil {
		t.Fatal(err)
	}
	_, err = openManifest(t, c, k.stranger, appManifest())
	var unknown *manifest.UnknownSignerError
	if !errors.As(err, &unknown) || unknown.Manifest == nil {
		t.Fatalf("open manifest with unknown key: %v", err)
	}
	rejected := RejectedManifest{Manifest: unknown.Manifest, Reason: UnknownSigner, Detail: unknown.Error()}

	deployer := &Actor{UID: 998, User: "deploy", Exe: "/usr/bin/rsync", Comm: "rsync"}
	deploy := func(path, content string) func(*Input) {
		return func(in *Input) {
			in.Change = modified(path, content)
			in.Actor = deployer
			in.Requests = nil
			in.Manifests = []*manifest.Verified{good}
		}
	}
	pkg := func(matches bool, content string) *PackageEvidence {
		return &PackageEvidence{Manager: "dpkg", Package: "app-common", Version: "1.2-1", Arch: "all",
			Path: "/etc/app/app.conf", Conffile: true, Matches: matches, Content: digest(content).String()}
	}

	tests := []struct {
		name    string
		edit    func(*Input)
		want    []Reason // nil = authorized
		by      AuthorityKind
		byID    string
		recheck bool
		explain string // substring of the explanation
	}{
		{name: "implementer in window", edit: func(*Input) {}, by: ByChangeRequest, byID: "CHG-1",
			explain: "implementer carol, approved by bob"},
		{name: "outside window", edit: func(in *Input) { in.At = t0.Add(3 * time.Hour); in.Now = in.At },
			want: []Reason{OutsideWindow}, explain: "outside the window of CHG-1"},
		{name: "before window", edit: func(in *Input) { in.At = t0.Add(-2 * time.Hour) },
			want: []Reason{OutsideWindow, NotApproved}},
		{name: "after close", edit: func(in *Input) {
			closed := t0.Add(-time.Minute)
			in.Requests[0].State, in.Requests[0].Closed = StateClosed, &closed
		}, want: []Reason{OutsideWindow}, explain: "was closed at"},
		{name: "closed after the change", edit: func(in *Input) {
			closed := t0.Add(time.Minute)
			in.Requests[0].State, in.Requests[0].Closed = StateClosed, &closed
		}, by: ByChangeRequest, byID: "CHG-1"},
		{name: "not an implementer", edit: func(in *Input) { in.Actor = bob },
			want: []Reason{NotAnImplementer, SelfApproved}, explain: "bob is not an implementer"},
		{name: "app-admin not an implementer", edit: func(in *Input) { in.Actor = dave },
			want: []Reason{NotAnImplementer}, explain: "dave is not an implementer of CHG-1 (carol, erin)"},
		{name: "requester not implementer", edit: func(in *Input) { in.Actor = alice },
			want: []Reason{NotAnImplementer}},
		{name: "implementer without role", edit: func(in *Input) { in.Host = "db-1"; in.Requests[0].Scope.Hosts = nil },
			want: []Reason{NotAnImplementer}, explain: "no role of theirs allows changes"},
		{name: "not approved", edit: func(in *Input) { in.Requests[0].State, in.Requests[0].Approvals = StateOpen, nil },
			want: []Reason{NotApproved}, explain: "has no approval (state open)"},
		{name: "approved after the change", edit: func(in *Input) { in.Requests[0].Approvals[0].At = t0.Add(time.Minute) },
			want: []Reason{NotApproved}, explain: "only after the change"},
		{name: "approved by non-approver", edit: func(in *Input) { in.Requests[0].Approvals[0].By = "frank" },
			want: []Reason{NotApproved}, explain: "hold no approving role"},
		{name: "approved by unknown person", edit: func(in *Input) { in.Requests[0].Approvals[0].By = "mallory" },
			want: []Reason{NotApproved}},
		{name: "self approved by requester", edit: func(in *Input) { in.Requests[0].Approvals[0].By = "alice" },
			want: []Reason{SelfApproved}},
		{name: "self approved by implementer", edit: func(in *Input) { in.Requests[0].Approvals[0].By = "erin" },
			want: []Reason{SelfApproved}},
		{name: "second valid approval suffices", edit: func(in *Input) {
			in.Requests[0].Approvals = []Decision{{By: "alice", At: approve}, {By: "grace", At: approve}}
		}, by: ByChangeRequest, byID: "CHG-1", explain: "approved by grace"},
		{name: "rejected before the change", edit: func(in *Input) {
			in.Requests[0].State, in.Requests[0].Rejection = StateRejected, &Decision{By: "grace", At: t0.Add(-time.Minute)}
		}, want: []Reason{NotApproved}, explain: "rejected by grace"},
		{name: "rejected after the change", edit: func(in *Input) {
			in.Requests[0].State, in.Requests[0].Rejection = StateRejected, &Decision{By: "grace", At: t0.Add(time.Minute)}
		}, by: ByChangeRequest, byID: "CHG-1"},
		{name: "no change request", edit: func(in *Input) { in.Change = modified("/etc/other.conf", "x") },
			want: []Reason{NoChangeRequest}, explain: "No change request, manifest or package covers /etc/other.conf"},
		{name: "other host", edit: func(in *Input) { in.Host = "db-1" }, want: []Reason{NoChangeRequest}},
		{name: "no requests at all", edit: func(in *Input) { in.Requests = nil }, want: []Reason{NoChangeRequest}},
		{name: "no who-data", edit: func(in *Input) { in.Actor = nil }, want: []Reason{UnknownActor}, explain: "No who-data"},
		{name: "unmapped login uid", edit: func(in *Input) { in.Actor = sudoActor(4242, "") },
			want: []Reason{UnknownActor}, explain: "unmapped login uid 4242"},
		{name: "root without login uid", edit: func(in *Input) { in.Actor = &Actor{UID: 0, AUID: uidp(NoAUID), User: "root"} },
			want: []Reason{UnknownActor}},
		{name: "uid when no login uid", edit: func(in *Input) { in.Actor = &Actor{UID: 1003, User: "carol"} },
			by: ByChangeRequest, byID: "CHG-1"},
		{name: "login name when uid unmapped", edit: func(in *Input) { in.Actor = &Actor{UID: 5000, User: "carol"} },
			by: ByChangeRequest, byID: "CHG-1"},
		{name: "login user when auid unmapped", edit: func(in *Input) { in.Actor = sudoActor(5000, "carol") },
			by: ByChangeRequest, byID: "CHG-1"},
		{name: "api identity", edit: func(in *Input) {
			in.Actor = &Actor{API: "grace@example.com"}
		}, want: []Reason{NotAnImplementer}, explain: "API identity grace@example.com"},
		{name: "conflicting roles", edit: func(in *Input) { in.Actor = erin },
			want: []Reason{SoDConflict}, explain: "erin holds conflicting roles developer and production-deployer"},
		{name: "many reasons in order", edit: func(in *Input) {
			in.Actor, in.At = erin, t0.Add(5*time.Hour)
			in.Requests[0].Approvals[0].By = "alice"
			in.Requests[0].Implementers = []string{"carol"}
		}, want: []Reason{OutsideWindow, NotAnImplementer, SelfApproved, SoDConflict}},

		// Emergency requests.
		{name: "emergency pending", edit: func(in *Input) {
			in.Requests[0].Emergency, in.Requests[0].State, in.Requests[0].Approvals = true, StateOpen, nil
			in.Now = t0.Add(time.Hour)
		}, by: ByChangeRequest, byID: "CHG-1", recheck: true, explain: "approval due by 2026-11-24T10:00:00Z"},
		{name: "emergency approved afterwards in time", edit: func(in *Input) {
			in.Requests[0].Emergency = true
			in.Requests[0].Approvals[0].At = t0.Add(5 * time.Hour)
			in.Now = t0.Add(48 * time.Hour)
		}, by: ByChangeRequest, byID: "CHG-1", explain: "approved afterwards by bob"},
		{name: "emergency unreviewed", edit: func(in *Input) {
			in.Requests[0].Emergency, in.Requests[0].State, in.Requests[0].Approvals = true, StateOpen, nil
			in.Now = t0.Add(25 * time.Hour)
		}, want: []Reason{EmergencyUnreviewed}},
		{name: "emergency approved too late", edit: func(in *Input) {
			in.Requests[0].Emergency = true
			in.Requests[0].Approvals[0].At = t0.Add(30 * time.Hour)
			in.Now = t0.Add(48 * time.Hour)
		}, want: []Reason{EmergencyUnreviewed}},
		{name: "emergency self approved", edit: func(in *Input) {
			in.Requests[0].Emergency = true
			in.Requests[0].Approvals[0] = Decision{By: "alice", At: t0.Add(time.Hour)}
			in.Now = t0.Add(48 * time.Hour)
		}, want: []Reason{SelfApproved, EmergencyUnreviewed}},
		{name: "emergency rejected", edit: func(in *Input) {
			in.Requests[0].Emergency, in.Requests[0].State, in.Requests[0].Approvals = true, StateRejected, nil
			in.Requests[0].Rejection = &Decision{By: "bob", At: t0.Add(time.Minute)}
			in.Now = t0.Add(time.Hour)
		}, want: []Reason{NotApproved}, explain: "was rejected by bob"},

		// Several requests.
		{name: "best of two requests", edit: func(in *Input) {
			late := chg1()
			late.ID, late.Window = "CHG-0", Window{Start: t0.Add(time.Hour), End: t0.Add(2 * time.Hour)}
			in.Requests = append([]Request{late}, in.Requests...)
		}, by: ByChangeRequest, byID: "CHG-1", explain: "2 change requests cover the path; judged against CHG-1 (fewest problems, then lowest ID); also considered CHG-0 (outside_window)"},
		{name: "two authorizing requests: lowest ID", edit: func(in *Input) {
			other := chg1()
			other.ID = "CHG-07"
			in.Requests = append(in.Requests, other)
		}, by: ByChangeRequest, byID: "CHG-07", explain: "also considered CHG-1 (authorizes)"},
		{name: "final over provisional", edit: func(in *Input) {
			em := chg1()
			em.ID, em.Emergency, em.State, em.Approvals = "CHG-0", true, StateOpen, nil
			in.Requests = append(in.Requests, em)
		}, by: ByChangeRequest, byID: "CHG-1"},

		// Manifests.
		{name: "manifest match", edit: deploy("/srv/app/bin/app", "app v2"), by: ByManifest, byID: "deploy-app/412",
			explain: "commit 9fceb02 by erin, reviewed by bob, erin"},
		{name: "manifest wrong hash", edit: deploy("/srv/app/bin/app", "app v2 + backdoor"),
			want: []Reason{ManifestMismatch}, explain: "Manifest deploy-app/412 expects sha256:"},
		{name: "manifest removed file", edit: func(in *Input) {
			deploy("/srv/app/bin/app", "app v2")(in)
			in.Change = fim.Change{Path: in.Change.Path, Kind: fim.Removed, Old: in.Change.Old}
		}, want: []Reason{ManifestMismatch}},
		{name: "manifest mode change", edit: func(in *Input) {
			deploy("/srv/app/bin/app", "app v2")(in)
			in.Change.New.Mode = 0o4755
			in.Change.Changed = in.Change.Changed.With(fim.AttrMode)
		}, want: []Reason{ManifestMismatch}, explain: "vouches for content only, but mode changed"},
		{name: "manifest added file", edit: func(in *Input) {
			deploy("/srv/app/bin/app", "app v2")(in)
			in.Change = fim.Change{Path: in.Change.Path, Kind: fim.Added, New: in.Change.New}
		}, by: ByManifest, byID: "deploy-app/412"},
		{name: "manifest expired", edit: func(in *Input) {
			deploy("/srv/app/bin/app", "app v2")(in)
			in.At = t0.Add(8 * 24 * time.Hour)
		}, want: []Reason{ManifestMismatch}, explain: "is not valid at"},
		{name: "manifest other host", edit: func(in *Input) {
			deploy("/srv/app/bin/app", "app v2")(in)
			in.Host = "db-1"
		}, want: []Reason{NoChangeRequest}},
		{name: "manifest path outside pipeline scope", edit: func(in *Input) {
			deploy("/srv/app/bin/app", "app v2")(in)
			m := appManifest()
			m.Run, m.Files = "414", []manifest.File{{Path: "/etc/app/app.conf", SHA256: [32]byte(digest("workers = 8\n").Sum)}}
			v, err := openManifest(t, c, k.signer, m)
			if err != nil {
				t.Fatal(err)
			}
			in.Change, in.Manifests = modified("/etc/app/app.conf", "workers = 8\n"), []*manifest.Verified{v}
		}, want: []Reason{NoChangeRequest}},
		{name: "manifest reviewed only by author", edit: func(in *Input) {
			deploy("/srv/app/bin/app", "app v2")(in)
			in.Manifests = []*manifest.Verified{selfReviewed}
		}, want: []Reason{SoDConflict}, explain: "has no reviewer other than its author"},
		{name: "newest good manifest wins", edit: func(in *Input) {
			deploy("/srv/app/bin/app", "app v2")(in)
			in.Manifests = []*manifest.Verified{selfReviewed, good}
		}, by: ByManifest, byID: "deploy-app/412"},
		{name: "manifest unknown signer", edit: func(in *Input) {
			deploy("/srv/app/bin/app", "app v2")(in)
			in.Manifests, in.Rejected = nil, []RejectedManifest{rejected}
		}, want: []Reason{UnknownSigner}, explain: "was rejected: manifest signed by unknown key deploy-app+"},
		{name: "manifest mismatch but request authorizes", edit: func(in *Input) {
			in.Manifests = []*manifest.Verified{good}
			in.Change = modified("/srv/app/bin/app", "hotfix")
			in.Requests[0].Scope.Paths = []string{"/srv/app/**"}
			in.Actor = erin
			in.Requests[0].Implementers = []string{"carol"}
		}, want: []Reason{NotAnImplementer, ManifestMismatch, SoDConflict}},

		// Packages.
		{name: "package update by dpkg", edit: func(in *Input) {
			in.Actor, in.Requests, in.Package = dpkg, nil, pkg(true, "workers = 8\n")
		}, by: ByPackage, byID: "app-common", explain: "Content matches package app-common 1.2-1 (dpkg)"},
		{name: "package update by comm", edit: func(in *Input) {
			in.Actor = &Actor{UID: 0, Exe: "/usr/bin/python3.11", Comm: "unattended-upgr"}
			in.Requests, in.Package = nil, pkg(true, "workers = 8\n")
		}, by: ByPackage, byID: "app-common"},
		{name: "package content seen by scan", edit: func(in *Input) {
			in.Actor, in.Requests, in.Package = nil, nil, pkg(true, "workers = 8\n")
		}, by: ByPackage, byID: "app-common"},
		{name: "package checksum mismatch", edit: func(in *Input) {
			in.Actor, in.Requests, in.Package = dpkg, nil, pkg(false, "workers = 8\n")
		}, want: []Reason{NoChangeRequest}, explain: "does not match the package's checksum"},
		{name: "package content raced", edit: func(in *Input) {
			in.Actor, in.Requests, in.Package = dpkg, nil, pkg(true, "workers = 9\n")
		}, want: []Reason{NoChangeRequest}, explain: "not with the content this change recorded"},
		{name: "package content copied by a person", edit: func(in *Input) {
			in.Actor, in.Requests, in.Package = dave, nil, pkg(true, "workers = 8\n")
		}, want: []Reason{NoChangeRequest}, explain: "not made by a package manager"},
		{name: "package evidence falls back to request", edit: func(in *Input) {
			in.Package = pkg(true, "workers = 8\n")
		}, by: ByChangeRequest, byID: "CHG-1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := baseInput()
			tc.edit(&in)
			v := c.Classify(in)
			if !slices.Equal(v.Reasons, tc.want) {
				t.Fatalf("reasons = %v, want %v\n%s", v.Reasons, tc.want, v.Explanation)
			}
			if v.Authorized != (tc.want == nil) {
				t.Fatalf("authorized = %v with reasons %v", v.Authorized, v.Reasons)
			}
			if tc.want == nil && (v.By == nil || v.By.Kind != tc.by || v.By.ID != tc.byID) {
				t.Fatalf("by = %+v, want %s %s\n%s", v.By, tc.by, tc.byID, v.Explanation)
			}
			if tc.want != nil && v.By != nil {
				t.Fatalf("unauthorized verdict names authority %+v", v.By)
			}
			if (v.RecheckAt != nil) != tc.recheck {
				t.Fatalf("recheck_at = %v, want set %v", v.RecheckAt, tc.recheck)
			}
			if !strings.Contains(v.Explanation, tc.explain) {
				t.Fatalf("explanation %q lacks %q", v.Explanation, tc.explain)
			}
			// Pure and deterministic: the same input gives the same verdict.
			again := c.Classify(in)
			a, _ := json.Marshal(v)
			b, _ := json.Marshal(again)
			if string(a) != string(b) {
				t.Fatalf("verdicts differ:\n%s\n%s", a, b)
			}
		})
	}
}

func TestClassifyEveryReasonAndAuthority(t *testing.T) {
	// The table above must exercise every reason and every authority kind;
	// this guards against a new code without a test.
	covered := map[Reason]bool{NoChangeRequest: true, OutsideWindow: true, NotAnImplementer: true, NotApproved: true,
		SelfApproved: true, ManifestMismatch: true, UnknownSigner: true, SoDConflict: true, EmergencyUnreviewed: true, UnknownActor: true}
	for _, r := range AllReasons() {
		if !covered[r] {
			t.Errorf("reason %s has no classify test", r)
		}
	}
	if len(covered) != len(AllReasons()) {
		t.Errorf("covered %d reasons, AllReasons has %d", len(covered), len(AllReasons()))
	}
}

func TestVerdictJSON(t *testing.T) {
	c := compile(t, testConfig(newKeys(t).vkey))
	in := baseInput()
	in.At = t0.Add(3 * time.Hour)
	v := c.Classify(in)
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var back Verdict
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"reasons":["outside_window"]`) || back.Reasons[0] != OutsideWindow || back.Person != "carol" || back.Request != "CHG-1" {
		t.Fatalf("round trip: %s -> %+v", b, back)
	}
}

func TestNormalize(t *testing.T) {
	got := normalize([]Reason{UnknownActor, SoDConflict, NoChangeRequest, SoDConflict, UnknownActor})
	want := []Reason{NoChangeRequest, SoDConflict, UnknownActor}
	if !slices.Equal(got, want) {
		t.Fatalf("normalize = %v, want %v", got, want)
	}
	if normalize(nil) != nil {
		t.Fatal("normalize(nil) != nil")
	}
}
