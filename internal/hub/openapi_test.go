package hub_test

import (
	"os"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/vigilfim/vigil/internal/fleettest"
	"github.com/vigilfim/vigil/internal/hub"
)

// TestOpenAPIMatchesRoutes keeps docs/openapi.yaml and the registered
// handlers the same set of method + path.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	b, err := os.ReadFile("../../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OpenAPI string                               `yaml:"openapi"`
		Paths   map[string]map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("parse openapi.yaml: %v", err)
	}
	var documented []string
	for p, ops := range doc.Paths {
		for m, op := range ops {
			if op["responses"] == nil {
				t.Errorf("%s %s: no responses", m, p)
			}
			documented = append(documented, strings.ToUpper(m)+" "+p)
		}
	}
	h := fleettest.StartHub(t, "", "", hub.Options{})
	var registered []string
	for _, r := range h.Routes() {
		registered = append(registered, r.Method+" "+r.Path)
	}
	slices.Sort(documented)
	slices.Sort(registered)
	if !slices.Equal(documented, registered) {
		t.Fatalf("openapi.yaml documents\n  %s\nthe hub registers\n  %s", strings.Join(documented, "\n  "), strings.Join(registered, "\n  "))
	}
}
