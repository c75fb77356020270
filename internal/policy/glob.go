package policy

import "path"

// Match reports whether the absolute path matches the glob pattern.
// Patterns use path.Match syntax per component, plus "**" for any number of
// components. A pattern without a slash matches the base name anywhere
// ("*.swp"); a pattern with a slash matches the whole path ("/etc/**/*.bak").
//
// Placeholder: the policy package's compiler replaces this with a compiled,
// validated matcher; the semantics above are the contract.
func Match(pattern, name string) bool {
	if !containsSlash(pattern) {
		ok, _ := path.Match(pattern, path.Base(name))
		return ok
	}
	return matchComponents(split(pattern), split(name))
}

func containsSlash(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return true
		}
	}
	return false
}

func split(p string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(p); i++ {
		if i == len(p) || p[i] == '/' {
			if i > start {
				out = append(out, p[start:i])
			}
			start = i + 1
		}
	}
	return out
}

func matchComponents(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for i := len(name); i >= 0; i-- {
				if matchComponents(pat[1:], name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], name[0]); !ok {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}
