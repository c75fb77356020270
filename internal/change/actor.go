package change

import (
	"fmt"
	"path"
	"slices"

	"github.com/vigilfim/vigil/internal/policy"
)

// NoAUID is the kernel's "unset" login uid (4294967295): a process that
// never went through a login, such as a daemon started at boot.
const NoAUID = ^uint32(0)

// Actor is the who-data of the process that made a change, as far as the
// classifier needs it. The watch layer's whodata.Who maps onto it field by
// field (uid, auid, user, login_user, exe, comm, attribution); a Who whose
// attribution is "unavailable" or that has no uid is no Actor at all (nil).
type Actor struct {
	UID uint32 `json:"uid"`
	// AUID is the login uid, which survives su and sudo: the person behind
	// a root shell. Nil or NoAUID when unset.
	AUID      *uint32 `json:"auid,omitempty"`
	User      string  `json:"user,omitempty"`
	LoginUser string  `json:"login_user,omitempty"`
	Exe       string  `json:"exe,omitempty"`
	Comm      string  `json:"comm,omitempty"`
	// API is the identity of an API client, for changes made through
	// Vigil's own API rather than by a process on the host.
	API string `json:"api,omitempty"`
	// Attribution says where the identity came from ("audit": recorded by
	// the kernel at the syscall; "proc": read from /proc afterwards), for
	// organization rules that demand the stronger kind.
	Attribution string `json:"attribution,omitempty"`
}

func (a *Actor) auid() (uint32, bool) {
	if a.AUID == nil || *a.AUID == NoAUID {
		return 0, false
	}
	return *a.AUID, true
}

// Person is someone in the directory.
type Person struct {
	ID    string   `json:"id"`
	Name  string   `json:"name,omitempty"`
	Email string   `json:"email,omitempty"`
	Roles []string `json:"roles,omitempty"` // sorted
}

// HasRole reports whether the person holds the role.
func (p *Person) HasRole(role string) bool {
	_, ok := slices.BinarySearch(p.Roles, role)
	return ok
}

// Scope is where something applies: path globs (policy.Match syntax, "**"
// for any depth) on hosts matching host globs (path.Match syntax). No host
// globs means every host.
type Scope struct {
	Paths []string `yaml:"paths" json:"paths"`
	Hosts []string `yaml:"hosts,omitempty" json:"hosts,omitempty"`
}

// Covers reports whether the scope includes path on host.
func (s Scope) Covers(host, p string) bool {
	if !slices.ContainsFunc(s.Paths, func(g string) bool { return policy.Match(g, p) }) {
		return false
	}
	if len(s.Hosts) == 0 {
		return true
	}
	return slices.ContainsFunc(s.Hosts, func(g string) bool { ok, _ := path.Match(g, host); return ok })
}

// validate checks the globs: path globs must be absolute (a scope names
// trees, not file names anywhere) and every component a valid pattern.
func (s Scope) validate() error {
	if len(s.Paths) == 0 {
		return fmt.Errorf("scope has no paths")
	}
	for _, g := range s.Paths {
		if err := validPathGlob(g); err != nil {
			return err
		}
	}
	for _, g := range s.Hosts {
		if _, err := path.Match(g, ""); err != nil || g == "" {
			return fmt.Errorf("host glob %q is invalid", g)
		}
	}
	return nil
}

func validPathGlob(g string) error {
	if len(g) == 0 || g[0] != '/' {
		return fmt.Errorf("path glob %q must be absolute", g)
	}
	for _, c := range splitPath(g) {
		if _, err := path.Match(c, ""); err != nil {
			return fmt.Errorf("path glob %q: component %q: %w", g, c, err)
		}
	}
	return nil
}

func splitPath(p string) []string {
	var out []string
	for start, i := 0, 0; i <= len(p); i++ {
		if i == len(p) || p[i] == '/' {
			if i > start {
				out = append(out, p[start:i])
			}
			start = i + 1
		}
	}
	return out
}

// resolve maps who-data to a person. The login uid comes first: after
// "sudo -i" the uid is root's but the auid is still the person who logged
// in, and that is who is accountable. Without a login uid (daemons, cron,
// console root) the uid or user name is used. The second result says which
// identity matched, for explanations.
func (c *Classifier) resolve(a *Actor) (*Person, string) {
	if a == nil {
		return nil, "no who-data"
	}
	if a.API != "" {
		if p := c.byAPI[a.API]; p != nil {
			return p, "API identity " + a.API
		}
		return nil, "unmapped API identity " + a.API
	}
	if auid, ok := a.auid(); ok {
		if p := c.byUID[auid]; p != nil {
			return p, fmt.Sprintf("login uid %d", auid)
		}
		if p := c.byLogin[a.LoginUser]; a.LoginUser != "" && p != nil {
			return p, "login user " + a.LoginUser
		}
		return nil, fmt.Sprintf("unmapped login uid %d", auid)
	}
	if p := c.byUID[a.UID]; p != nil {
		return p, fmt.Sprintf("uid %d", a.UID)
	}
	if p := c.byLogin[a.User]; a.User != "" && p != nil {
		return p, "user " + a.User
	}
	return nil, fmt.Sprintf("unmapped uid %d", a.UID)
}

// Person returns the person with the given ID.
func (c *Classifier) Person(id string) (*Person, bool) {
	p, ok := c.people[id]
	return p, ok
}

// Resolve returns the person an actor maps to, or nil when nobody does.
func (c *Classifier) Resolve(a *Actor) *Person {
	p, _ := c.resolve(a)
	return p
}

// mayImplement reports whether one of the person's roles allows changes to
// path on host.
func (c *Classifier) mayImplement(p *Person, host, path string) bool {
	for _, r := range p.Roles {
		for _, s := range c.roles[r].Implement {
			if s.Covers(host, path) {
				return true
			}
		}
	}
	return false
}

// mayApprove reports whether one of the person's roles allows approving.
func (c *Classifier) mayApprove(p *Person) bool {
	return slices.ContainsFunc(p.Roles, func(r string) bool { return c.roles[r].Approve })
}

// isPackageManager reports whether the actor is a package manager: by
// executable, or by command name for interpreters such as
// unattended-upgrades (python3). A spoofed comm gains nothing: a package
// authority also needs the content to match the package database.
func (c *Classifier) isPackageManager(a *Actor) bool {
	return a != nil && (slices.Contains(c.pkgExes, a.Exe) || slices.Contains(c.pkgComms, a.Comm))
}
