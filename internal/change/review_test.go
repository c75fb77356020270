package change

import (
	"errors"
	"testing"
	"time"
)

func TestReviewItem(t *testing.T) {
	c := compile(t, testConfig(newKeys(t).vkey))
	in := baseInput()
	in.Actor = alice // the requester, not an implementer
	v := c.Classify(in)
	if v.Authorized {
		t.Fatal("alice's change was authorized")
	}
	it := NewReviewItem("R-1", "42", in.Host, in.Change.Path, v, "root", t0.Add(time.Minute))
	if it.State != ReviewOpen || it.Actor != "alice" {
		t.Fatalf("new item: %+v", it)
	}

	var self *SelfReviewError
	if _, err := it.Accept("alice", "it was fine", t0.Add(time.Hour)); !errors.As(err, &self) || err.Error() != "alice cannot review R-1: alice made the change" {
		t.Fatalf("accept by the actor: %v", err)
	}
	if _, err := it.Reject("alice", "", t0.Add(time.Hour)); !errors.As(err, &self) {
		t.Fatalf("reject by the actor: %v", err)
	}
	if _, err := it.Accept("root", "", t0.Add(time.Hour)); !errors.As(err, &self) {
		t.Fatalf("accept by the actor's account: %v", err)
	}

	done, err := it.Accept("bob", "emergency fix, ticket follows", t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if done.State != ReviewAccepted || done.Reviewer != "bob" || done.Decided == nil || it.State != ReviewOpen {
		t.Fatalf("accepted: %+v (input %+v)", done, it)
	}
	var te *TransitionError
	if _, err := done.Reject("grace", "", t0.Add(2*time.Hour)); !errors.As(err, &te) {
		t.Fatalf("decide twice: %v", err)
	}
	rej, err := it.Reject("grace", "roll back", t0.Add(time.Hour))
	if err != nil || rej.State != ReviewRejected {
		t.Fatalf("reject: %v %+v", err, rej)
	}
	if _, err := it.Accept("", "", t0); err == nil {
		t.Fatal("accepted by nobody")
	}
}
