package policy

import (
	"bytes"
	"slices"

	"gopkg.in/yaml.v3"
)

// ChangeControlKeys are the top-level sections the policy parser accepts
// but does not interpret: the change-control directory and rules, whose
// schema belongs to internal/change (which imports this package, so the
// decoding can't happen here).
var changeControlKeys = []string{"people", "roles", "pipelines", "sod"}

// ChangeControl is the change-control part of a policy file as text.
//
// Text holds the sections' lines exactly as written, in file order, each
// ending in a newline; it is what Marshal writes back and what Equal
// compares. Source is the same YAML placed at its original lines (every
// other line of the file left empty), so that a decoder's "line N" in an
// error is line N of File.
type ChangeControl struct {
	File   string
	Text   []byte
	Source []byte
}

// Empty reports whether the policy has no change-control section.
func (c ChangeControl) Empty() bool { return len(c.Text) == 0 }

// changeControl cuts the change-control sections out of the source. Each
// section runs from its key's line to the line before the next top-level
// key, which needs the top-level mapping in block style with keys at
// column 1; anything else is reported as an error on the section.
func (p *parser) changeControl(root *yaml.Node, data []byte) ChangeControl {
	cc := ChangeControl{File: p.file}
	if root.Kind != yaml.MappingNode {
		return cc
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	if len(lines) > 0 && len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1] // data ended in a newline
	}
	keep := make([]bool, len(lines))
	found := false
	for i := 0; i+1 < len(root.Content); i += 2 {
		k := root.Content[i]
		if !slices.Contains(changeControlKeys, k.Value) {
			continue
		}
		found = true
		if root.Style&yaml.FlowStyle != 0 || k.Column != 1 {
			p.errorf(k, "%s: change-control sections need a block-style policy with top-level keys at column 1", k.Value)
			continue
		}
		end := len(lines) // exclusive, 0-based
		if i+2 < len(root.Content) {
			next := root.Content[i+2]
			if next.Line == k.Line {
				p.errorf(k, "%s: put the next top-level key on a line of its own", k.Value)
				continue
			}
			end = next.Line - 1
		}
		for l := k.Line - 1; l < end && l < len(lines); l++ {
			keep[l] = true
		}
	}
	if !found {
		return cc
	}
	var text, src bytes.Buffer
	for i, l := range lines {
		if !keep[i] {
			if len(l) > 0 && l[len(l)-1] == '\n' {
				src.WriteByte('\n')
			}
			continue
		}
		text.Write(l)
		src.Write(l)
		if len(l) == 0 || l[len(l)-1] != '\n' {
			text.WriteByte('\n')
			src.WriteByte('\n')
		}
	}
	cc.Text, cc.Source = text.Bytes(), src.Bytes()
	return cc
}
