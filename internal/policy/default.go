package policy

import (
	"path/filepath"
	"slices"

	"github.com/vigilfim/vigil/internal/fim"
)

// ForPaths returns the policy used when paths are given on the command line
// without a policy file: every attribute, SHA-256, unlimited depth, staying
// on each path's file system.
func ForPaths(paths []string) *Policy {
	p := &Policy{Name: "command line"}
	seen := map[string]bool{}
	for _, path := range paths {
		path = filepath.Clean(path)
		if seen[path] {
			continue
		}
		seen[path] = true
		p.Rules = append(p.Rules, &Rule{
			Name:     path,
			Path:     path,
			MaxDepth: -1,
			Check:    fim.Check{Attrs: fim.AllAttrs},
			Hash:     fim.SHA256,
			Severity: SeverityMedium,
		})
	}
	slices.SortFunc(p.Rules, func(a, b *Rule) int { return fim.ComparePaths(a.Path, b.Path) })
	return p
}
