package hub

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/vigilfim/vigil/internal/evidence"
	"github.com/vigilfim/vigil/internal/fleet"
	"github.com/vigilfim/vigil/internal/whodata"
)

func TestRelayBody(t *testing.T) {
	for _, r := range []fleet.StoredRecord{
		{RID: 1, AgentID: newID(), Host: "h", Record: fleet.Record{Seq: 1, Kind: fleet.KindChange, Time: time.Unix(1700000000, 123456789).UTC(), Body: json.RawMessage(`{"path":"/etc/\u00e9 \"x\"","n":[1,2]}`)}},
		{RID: 1 << 40, AgentID: newID(), Record: fleet.Record{Seq: 1 << 50, Kind: fleet.KindHealth, Time: time.Unix(0, 0).UTC(), Body: json.RawMessage(`{}`)}},
	} {
		raw, err := json.Marshal(r.Record)
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(ingestedBody{RID: r.RID, Agent: r.AgentID, Seq: r.Seq, Record: raw})
		if err != nil {
			t.Fatal(err)
		}
		if got := relayBody(r); !bytes.Equal(got, want) {
			t.Errorf("relayBody\n got %s\nwant %s", got, want)
		}
	}
}

// TestWhoOf checks the fast path against decoding the whole body.
func TestWhoOf(t *testing.T) {
	full := func(body []byte) string {
		var b struct {
			Who *whodata.Who `json:"who"`
		}
		if json.Unmarshal(body, &b) != nil || b.Who == nil || b.Who.UID == nil {
			return "unknown"
		}
		w := b.Who
		s := fmt.Sprintf("uid=%d(%s)", *w.UID, w.User)
		if w.AUID != nil && *w.AUID != whodata.UnsetID {
			s += fmt.Sprintf(" auid=%d(%s)", *w.AUID, w.LoginUser)
		}
		return s
	}
	for _, body := range []string{
		`{"path":"/x","who":{"uid":0,"user":"root","auid":1000,"login_user":"ann"}}`,
		`{"who":{"uid":5},"path":"/x"}`,
		`{"path":"/x"}`,
		`{"who":null}`,
		`{"who":{"uid":"zero"}}`,
		`{"a":{"who":{"uid":1}},"b":["}",{"c":"\"who\""}],"who":{"uid":2,"auid":4294967295}}`,
		`{"Who":{"uid":3}}`,
		`{"who":{"uid":3},"WHO":{"uid":4}}`,
		`{"who":{"uid":3},"who":{"auid":4}}`,
		`{"w\u0068o":{"uid":6}}`,
		` { "who" : { "uid" : 7 } , "n" : -1.5e3 , "t" : true } `,
		`{"n":1,"who":{"uid":8,"user":"a\"b"}}`,
		`{}`,
		`[1]`,
		`{"who":{"uid":9}`,
	} {
		if got, want := whoOf([]byte(body)), full([]byte(body)); got != want {
			t.Errorf("whoOf(%s) = %q, want %q", body, got, want)
		}
	}
}

func FuzzWhoOf(f *testing.F) {
	f.Add([]byte(`{"path":"/x","who":{"uid":0,"user":"root","auid":1000,"login_user":"ann"}}`))
	f.Add([]byte(`{"a":[{"who":1}],"who":{"uid":2}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		if !json.Valid(body) {
			return // bodies are validated at ingestion
		}
		var b struct {
			Who *whodata.Who `json:"who"`
		}
		want := "unknown"
		if json.Unmarshal(body, &b) == nil && b.Who != nil && b.Who.UID != nil {
			want = fmt.Sprintf("uid=%d(%s)", *b.Who.UID, b.Who.User)
			if b.Who.AUID != nil && *b.Who.AUID != whodata.UnsetID {
				want += fmt.Sprintf(" auid=%d(%s)", *b.Who.AUID, b.Who.LoginUser)
			}
			if len(want) > evidence.MaxActorLen {
				want = want[:evidence.MaxActorLen]
			}
		}
		if got := whoOf(body); got != want {
			t.Errorf("whoOf(%s) = %q, want %q", body, got, want)
		}
	})
}
