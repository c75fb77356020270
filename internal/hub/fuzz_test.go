package hub

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"testing"
)

// FuzzIngestBatch feeds arbitrary bodies to the ingestion decoder and
// validator: they must never panic, and what they accept must be a batch
// the store can take whole (ascending sequence numbers, compact JSON object
// bodies, known kinds).
func FuzzIngestBatch(f *testing.F) {
	f.Add([]byte(`{"records":[{"seq":1,"kind":"change","time":"2024-01-01T00:00:00Z","body":{"path":"/etc/x"}}]}`))
	f.Add([]byte(`{"records":[{"seq":1,"kind":"health","time":"2024-01-01T00:00:00Z","body":{ "a" : [1, 2] }},{"seq":2,"kind":"change","time":"2024-01-01T00:00:00Z","body":{}}]}`))
	f.Add([]byte(`{"records":[{"seq":2,"kind":"change","time":"2024-01-01T00:00:00Z","body":[1]}]}`))
	f.Add([]byte(`{"records":[`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest("POST", "/api/v1/agent/records", bytes.NewReader(body))
		var req IngestRequest
		if decode(r, &req) != nil || validateBatch(req.Records) != nil {
			return
		}
		for i, rec := range req.Records {
			if i > 0 && rec.Seq != req.Records[i-1].Seq+1 {
				t.Fatalf("accepted non-ascending sequence")
			}
			var buf bytes.Buffer
			if json.Compact(&buf, rec.Body) != nil || !bytes.Equal(buf.Bytes(), rec.Body) || rec.Body[0] != '{' {
				t.Fatalf("accepted body %q", rec.Body)
			}
		}
	})
}
