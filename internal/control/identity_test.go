package control

import "testing"

func TestActorFields(t *testing.T) {
	u := func(v uint32) *uint32 { return &v }
	if a := ActorFields("unavailable", u(0), nil, "", "", "", ""); a != nil {
		t.Fatalf("unavailable attribution: %+v", a)
	}
	if a := ActorFields("audit", nil, u(1003), "", "", "", ""); a != nil {
		t.Fatalf("no uid: %+v", a)
	}
	a := ActorFields("audit", u(0), u(4294967295), "root", "", "/usr/bin/dpkg", "dpkg")
	if a == nil || a.AUID != nil || a.Exe != "/usr/bin/dpkg" || a.Attribution != "audit" {
		t.Fatalf("unset auid: %+v", a)
	}
	a = ActorFields("proc", u(0), u(1003), "root", "carol", "/usr/bin/vim", "vim")
	if a == nil || a.AUID == nil || *a.AUID != 1003 || a.LoginUser != "carol" {
		t.Fatalf("sudo by carol: %+v", a)
	}
}
