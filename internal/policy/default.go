package policy

import (
	_ "embed" // for the built-in policy
	"fmt"
	"path/filepath"

	"github.com/vigilfim/vigil/internal/fim"
)

// defaultSource is the built-in policy for a Debian or other Linux host.
// policies/linux-host.yaml at the top of the repository is a byte-identical
// copy for people to read and adapt (a test keeps them in step).
//
//go:embed builtin/linux-host.yaml
var defaultSource []byte

// DefaultSource returns the YAML text of the built-in policy.
func DefaultSource() []byte { return append([]byte(nil), defaultSource...) }

// DefaultName is the file name errors in the built-in policy would carry.
const DefaultName = "builtin:linux-host.yaml"

// Default returns the built-in policy for a Linux host, freshly parsed, so
// callers may keep it without sharing state. Paths it names that do not
// exist on a host are simply not found by the scan.
func Default() *Policy {
	p, err := Parse(DefaultName, defaultSource)
	if err != nil {
		// The embedded file is fixed at build time and parsed by the
		// tests, so this is a broken build, not a runtime condition.
		panic(fmt.Sprintf("built-in policy does not parse: %v", err))
	}
	return p
}

// ForPaths returns the policy used when paths are given on the command line
// without a policy file: every attribute, SHA-256, unlimited depth, staying
// on each path's file system. Relative paths are made absolute against the
// process's working directory by the caller; here they are only cleaned.
func ForPaths(paths []string) *Policy {
	seen := map[string]bool{}
	var rules []*Rule
	for _, path := range paths {
		path = filepath.Clean(path)
		if seen[path] {
			continue
		}
		seen[path] = true
		rules = append(rules, &Rule{
			Name:     path,
			Path:     path,
			MaxDepth: -1,
			Check:    fim.Check{Attrs: fim.AllAttrs},
			Hash:     fim.SHA256,
			Severity: SeverityMedium,
		})
	}
	p, err := New("command line", rules)
	if err != nil {
		// Only relative paths fail New; keep the old behaviour of an
		// index-less policy rather than dropping them.
		p = &Policy{Name: "command line", Rules: rules}
		sortRules(p.Rules)
	}
	return p
}
