package policy

// Only returns a policy that covers path alone, with the rule that governs
// it in p, or nil when p does not monitor path. A watcher uses it to look
// at one changed entry (a directory's own attributes, say) without walking
// everything below it.
func (p *Policy) Only(path string) (*Policy, error) {
	r := p.Lookup(path)
	if r == nil {
		return nil, nil
	}
	c := *r
	c.Path, c.MaxDepth = path, 0
	return New(p.Name, []*Rule{&c})
}
