package hub

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/vigilfim/vigil/internal/fleet"
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
