package control

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/vigilfim/vigil/internal/policy"
)

// entryRef matches the place change.Config.Compile names in each error:
// "people[2] ...", "sod.rules[0] ...".
var entryRef = regexp.MustCompile(`^(people|roles|pipelines|sod\.conflicting_roles|sod\.rules)\[(\d+)\]`)

// positionErrors prefixes each of Compile's errors with the file, line and
// column of the entry it names, found in the sections' source (which keeps
// the policy file's line numbers). Errors it can't place get the file.
func positionErrors(cc policy.ChangeControl, err error) error {
	var root yaml.Node
	_ = yaml.Unmarshal(cc.Source, &root) // it decoded once already
	var parts []error
	if j, ok := errors.Unwrap(err).(interface{ Unwrap() []error }); ok {
		parts = j.Unwrap()
	} else {
		parts = []error{err}
	}
	lines := make([]string, 0, len(parts))
	for _, p := range parts {
		msg := p.Error()
		line, col := 0, 0
		if m := entryRef.FindStringSubmatch(msg); m != nil {
			i, _ := strconv.Atoi(m[2])
			line, col = entryPos(&root, strings.Split(m[1], "."), i)
		}
		if line > 0 {
			lines = append(lines, fmt.Sprintf("%s:%d:%d: %s", cc.File, line, col, msg))
		} else {
			lines = append(lines, fmt.Sprintf("%s: %s", cc.File, msg))
		}
	}
	return &ConfigError{Msg: strings.Join(lines, "\n"), Err: err}
}

// entryPos finds item i of the sequence at keys in the document.
func entryPos(doc *yaml.Node, keys []string, i int) (line, col int) {
	n := doc
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	for _, k := range keys {
		if n.Kind != yaml.MappingNode {
			return 0, 0
		}
		var next *yaml.Node
		for j := 0; j+1 < len(n.Content); j += 2 {
			if n.Content[j].Value == k {
				next = n.Content[j+1]
			}
		}
		if next == nil {
			return 0, 0
		}
		n = next
	}
	if n.Kind != yaml.SequenceNode || i >= len(n.Content) {
		return 0, 0
	}
	return n.Content[i].Line, n.Content[i].Column
}

// ConfigError is an invalid change-control configuration: every problem,
// one per line, each with its place in the policy file.
type ConfigError struct {
	Msg string
	Err error // from change.Config.Compile
}

func (e *ConfigError) Error() string { return e.Msg }

// Unwrap returns Compile's error.
func (e *ConfigError) Unwrap() error { return e.Err }
