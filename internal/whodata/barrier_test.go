//go:build linux

package whodata

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestBarrier checks that one barrier in flight serves every waiter on an
// earlier moment, and that a mangled echo is ignored.
func TestBarrier(t *testing.T) {
	var sent []string
	b := newBarrier(func(s string) error { sent = append(sent, s); return nil })
	t1 := time.Now()
	done := make(chan bool, 2)
	go func() { done <- b.sync(context.Background(), t1, 5*time.Second) }()
	// Wait for the first sync to send its barrier.
	for {
		b.mu.Lock()
		n := len(sent)
		b.mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	go func() { done <- b.sync(context.Background(), t1, 5*time.Second) }()
	if b.received([]byte("pid=1 msg='something else'")) {
		t.Error("foreign user message taken for a barrier")
	}
	b.mu.Lock()
	echo := "audit(1.2:3): pid=1 msg='" + sent[0] + "'"
	b.mu.Unlock()
	if !b.received([]byte(echo)) {
		t.Fatal("barrier echo not recognised")
	}
	for range 2 {
		if !<-done {
			t.Error("sync did not complete")
		}
	}
	// One barrier serves both waiters; only resends (one per
	// barrierResend unanswered) add to it.
	if max := 1 + int(time.Since(t1)/barrierResend); len(sent) > max {
		t.Errorf("%d barriers sent for one moment, want at most %d", len(sent), max)
	}
	if b.sync(context.Background(), time.Now().Add(time.Hour), 10*time.Millisecond) {
		t.Error("sync past the newest echo succeeded without one")
	}
}

// TestBarrierResend sends another barrier when one goes unanswered (the
// kernel drops user messages when its backlog is full).
func TestBarrierResend(t *testing.T) {
	var mu sync.Mutex
	var sent []string
	b := newBarrier(func(s string) error { mu.Lock(); sent = append(sent, s); mu.Unlock(); return nil })
	done := make(chan bool)
	t1 := time.Now()
	go func() { done <- b.sync(context.Background(), t1, 5*time.Second) }()
	for {
		mu.Lock()
		n := len(sent)
		mu.Unlock()
		if n >= 2 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	mu.Lock()
	echo := "msg='" + sent[1] + "'"
	mu.Unlock()
	b.received([]byte(echo)) // only the second came back
	if !<-done {
		t.Fatal("sync did not complete on the resent barrier")
	}
}
