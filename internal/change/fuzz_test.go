package change

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"
)

// FuzzImportRequests checks that the import never panics and that what it
// accepts is valid and survives a JSON round trip.
func FuzzImportRequests(f *testing.F) {
	if data, err := os.ReadFile("testdata/requests.json"); err == nil {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		reqs, err := ImportRequests(bytes.NewReader(data))
		if err != nil {
			return
		}
		for i := range reqs {
			if err := reqs[i].Validate(); err != nil {
				t.Fatalf("imported an invalid request: %v", err)
			}
		}
		again, err := json.Marshal(reqs)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ImportRequests(bytes.NewReader(again)); err != nil {
			t.Fatalf("re-import of %s: %v", again, err)
		}
	})
}
