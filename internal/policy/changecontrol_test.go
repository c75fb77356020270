package policy

import (
	"bytes"
	"strings"
	"testing"
)

func TestChangeControlSections(t *testing.T) {
	src := `version: 1
name: cc
people:
  - id: alice
    uids: [1001]

rules:
  - path: /etc
sod:
  emergency_approval: 12h
`
	p, err := Parse("p.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	wantText := "people:\n  - id: alice\n    uids: [1001]\n\nsod:\n  emergency_approval: 12h\n"
	if got := string(p.ChangeControl.Text); got != wantText {
		t.Fatalf("Text = %q, want %q", got, wantText)
	}
	// Source keeps every section line at its line in the file.
	lines := strings.Split(string(p.ChangeControl.Source), "\n")
	if lines[2] != "people:" || lines[8] != "sod:" || lines[0] != "" || lines[6] != "" {
		t.Fatalf("Source lines misplaced: %q", lines)
	}
	out, err := Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse("m.yaml", out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back.ChangeControl.Text, p.ChangeControl.Text) || !back.Equal(p) {
		t.Fatalf("round trip lost the sections:\n%s", out)
	}
}

func TestChangeControlNeedsBlockStyle(t *testing.T) {
	_, err := Parse("p.yaml", []byte(`{version: 1, name: x, rules: [{path: /etc}], people: []}`))
	if err == nil || !strings.Contains(err.Error(), "block-style") {
		t.Fatalf("flow-style policy with people: got %v", err)
	}
}
