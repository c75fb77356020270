package control_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/vigilfim/vigil/internal/change"
	"github.com/vigilfim/vigil/internal/change/manifest"
)

// TestSoDThroughController checks the built-in SoD rules with what the
// controller reads from the store: a manifest reviewed only by its author
// authorizes nothing, and an emergency change not approved in time turns
// unauthorized once the deadline (24 h) has passed.
func TestSoDThroughController(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t) // the controller's clock is t10 + 1h
	bin := f.root + "/srv/app/bin/app"
	m := &manifest.Manifest{Pipeline: "deploy-app", Run: "500", Commit: "abc", Author: "erin", Reviewers: []string{"erin"},
		Hosts: []string{"*"}, Created: t10.Add(-time.Hour), Files: []manifest.File{{Path: bin, SHA256: sha256.Sum256([]byte("self"))}}}
	signed, err := manifest.Sign(m, f.sign)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.ctl.SubmitManifest(ctx, signed); err != nil {
		t.Fatal(err)
	}
	v, err := f.ctl.Classify(ctx, "app-1", modified(bin, "self"), t10, nil)
	if err != nil {
		t.Fatal(err)
	}
	if v.Authorized || fmt.Sprint(v.Reasons) != "[sod_conflict]" {
		t.Fatalf("self-reviewed manifest: %+v", v)
	}

	conf := f.root + "/etc/app/app.conf"
	r, err := change.Open(change.Request{ID: "INC-7", Title: "emergency", Requester: "alice", Implementers: []string{"carol"},
		Scope: change.Scope{Paths: []string{f.root + "/etc/app/**"}}, Emergency: true,
		Window: change.Window{Start: t10.Add(-26 * time.Hour), End: t10.Add(-24 * time.Hour)}}, t10.Add(-27*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.ctl.Store().CreateRequest(ctx, r); err != nil {
		t.Fatal(err)
	}
	// Made 25 h before the controller's clock, never approved.
	v, err = f.ctl.Classify(ctx, "app-1", modified(conf, "x"), t10.Add(-25*time.Hour), sudo(1003, "carol"))
	if err != nil {
		t.Fatal(err)
	}
	if v.Authorized || fmt.Sprint(v.Reasons) != "[emergency_unreviewed]" {
		t.Fatalf("late emergency: %+v", v)
	}
}
