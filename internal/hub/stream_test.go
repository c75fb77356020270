package hub_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/vigilfim/vigil/internal/agent"
	"github.com/vigilfim/vigil/internal/evidence"
	"github.com/vigilfim/vigil/internal/fleettest"
	"github.com/vigilfim/vigil/internal/hub"
)

// recvUntil reads acks until the high-water mark reaches hw.
func recvUntil(t *testing.T, st *agent.Stream, hw uint64) {
	t.Helper()
	for {
		got, err := st.Recv()
		if err != nil {
			t.Fatalf("waiting for ack %d: %v", hw, err)
		}
		if got >= hw {
			if got != hw {
				t.Fatalf("ack %d, want %d", got, hw)
			}
			return
		}
	}
}

// refusal reads until the stream's refusal and returns it.
func refusal(t *testing.T, st *agent.Stream) *agent.APIError {
	t.Helper()
	for {
		_, err := st.Recv()
		if err == nil {
			continue
		}
		var ae *agent.APIError
		if !errors.As(err, &ae) {
			t.Fatalf("want a refusal, got %v", err)
		}
		return ae
	}
}

func TestStreamDeliveryAndRefusals(t *testing.T) {
	h, _, st, c := enrolled(t, hub.Options{})
	sc := &http.Client{Transport: c.Transport}
	open := func() *agent.Stream {
		t.Helper()
		s, err := agent.OpenStream(t.Context(), sc, h.URL())
		if err != nil {
			t.Fatalf("open stream: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}

	// Records stream and are acknowledged; a resend after a lost ack
	// (records 1-3 again) is acknowledged, not stored twice.
	s := open()
	if err := s.Send(batch(1, 3).Records); err != nil {
		t.Fatal(err)
	}
	recvUntil(t, s, 3)
	if err := s.Send(batch(4, 4).Records); err != nil {
		t.Fatal(err)
	}
	recvUntil(t, s, 4)
	s.CloseSend()
	if _, err := s.Recv(); err == nil || !strings.Contains(err.Error(), "EOF") {
		t.Fatalf("after CloseSend: %v, want EOF", err)
	}
	s = open()
	if err := s.Send(batch(2, 6).Records); err != nil {
		t.Fatal(err)
	}
	recvUntil(t, s, 6)

	// Sequence numbers must ascend by one within a stream.
	if err := s.Send(batch(8, 8).Records); err != nil {
		t.Fatal(err)
	}
	if ae := refusal(t, s); ae.Status != 400 || ae.Body.Code != "malformed" || *ae.Body.HighWater != 6 {
		t.Fatalf("skipped sequence number: %v (high water %v)", ae, ae.Body.HighWater)
	}
	// A stream starting past the mark would leave a gap.
	s = open()
	if err := s.Send(batch(9, 9).Records); err != nil {
		t.Fatal(err)
	}
	if ae := refusal(t, s); ae.Status != 409 || ae.Body.Code != "sequence_gap" || *ae.Body.HighWater != 6 {
		t.Fatalf("gap: %v (high water %v)", ae, ae.Body.HighWater)
	}
	// A bad record refuses itself; what came before it in the stream
	// is stored.
	s = open()
	bad := batch(7, 9).Records
	bad[2].Body = json.RawMessage(`[1]`)
	if err := s.Send(bad); err != nil {
		t.Fatal(err)
	}
	if ae := refusal(t, s); ae.Body.Code != "malformed" || !strings.Contains(ae.Body.Error, "JSON object") {
		t.Fatalf("bad body: %v", ae)
	}
	// A stream opened with the wrong content type is an ordinary refusal.
	status, body := fleettest.Do(t, c, "POST", h.URL()+"/api/v1/agent/stream", "", map[string]string{})
	if status != 400 || errCode(t, body).Code != "malformed" {
		t.Fatalf("wrong content type: %d %s", status, body)
	}
	// Without a client certificate, no stream.
	plain := &http.Client{Transport: fleettest.Client(h.CA().Pool(), nil).Transport}
	if _, err := agent.OpenStream(t.Context(), plain, h.URL()); err == nil || !strings.Contains(err.Error(), "no_client_certificate") {
		t.Fatalf("stream without certificate: %v", err)
	}

	ag, err := h.Store().Agent(t.Context(), st.AgentID)
	if err != nil || ag.HighWater != 8 {
		t.Fatalf("high water %d, %v; want 8 (the records before the bad one)", ag.HighWater, err)
	}
	h.Stop(t)
	var seqs []uint64
	reasons := map[string]bool{}
	for _, r := range fleettest.Evidence(t, h.Dir) {
		var b struct {
			Seq    uint64 `json:"seq"`
			Event  string `json:"event"`
			Path   string `json:"path"`
			Reason string `json:"reason"`
		}
		json.Unmarshal(r.Body, &b)
		switch {
		case r.Kind == evidence.KindChange:
			seqs = append(seqs, b.Seq)
		case b.Event == "request_refused" && b.Path == "/api/v1/agent/stream":
			reasons[b.Reason] = true
		}
	}
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("evidence change %d has seq %d: duplicated or out of order", i, s)
		}
	}
	if uint64(len(seqs)) != ag.HighWater {
		t.Fatalf("evidence holds %d changes, high water %d", len(seqs), ag.HighWater)
	}
	for _, want := range []string{"sequence gap", "no client certificate"} {
		if !reasons[want] {
			t.Errorf("no evidence of stream refusal %q (have %v)", want, reasons)
		}
	}
	if len(reasons) < 5 {
		t.Errorf("stream refusals recorded: %v, want 5", reasons)
	}
}
