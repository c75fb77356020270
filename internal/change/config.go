package change

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vigilfim/vigil/internal/change/manifest"
)

// Config is the change-control part of the policy file: four top-level
// sections, people, roles, pipelines and sod. The policy parser embeds it
// with `yaml:",inline"` in its strict (KnownFields) decode, or calls
// ParseConfig on a document of its own; Compile validates it.
type Config struct {
	People    []PersonConfig   `yaml:"people,omitempty" json:"people,omitempty"`
	Roles     []RoleConfig     `yaml:"roles,omitempty" json:"roles,omitempty"`
	Pipelines []PipelineConfig `yaml:"pipelines,omitempty" json:"pipelines,omitempty"`
	SoD       SoDConfig        `yaml:"sod,omitempty" json:"sod,omitempty"`
}

// PersonConfig maps a person to their accounts and roles.
type PersonConfig struct {
	ID    string `yaml:"id" json:"id"`
	Name  string `yaml:"name,omitempty" json:"name,omitempty"`
	Email string `yaml:"email,omitempty" json:"email,omitempty"`
	// Logins are Unix login names; UIDs Unix user IDs. A uid is only
	// meaningful where accounts come from one directory (LDAP, SSSD), so
	// prefer logins when hosts number their local users differently.
	Logins []string `yaml:"logins,omitempty" json:"logins,omitempty"`
	UIDs   []uint32 `yaml:"uids,omitempty" json:"uids,omitempty"`
	// API identities (client certificate names, token subjects).
	API   []string `yaml:"api,omitempty" json:"api,omitempty"`
	Roles []string `yaml:"roles,omitempty" json:"roles,omitempty"`
}

// RoleConfig is a group of people and what it may do.
type RoleConfig struct {
	Name        string `yaml:"name" json:"name"`
	Description string `yaml:"description,omitempty" json:"description,omitempty"`
	// Implement lists where members may make changes (as implementers of
	// an approved request).
	Implement []Scope `yaml:"implement,omitempty" json:"implement,omitempty"`
	// Approve lets members approve change requests.
	Approve bool `yaml:"approve,omitempty" json:"approve,omitempty"`
}

// PipelineConfig registers a CI/CD pipeline's manifest signing key.
type PipelineConfig struct {
	ID string `yaml:"id" json:"id"`
	// Key is the ed25519 verifier key in signed-note form
	// ("<id>+<hash>+<base64>"), from `vigil manifest keygen`.
	Key   string   `yaml:"key" json:"key"`
	Hosts []string `yaml:"hosts" json:"hosts"`
	Paths []string `yaml:"paths" json:"paths"`
}

// SoDConfig holds the optional segregation-of-duties rules; the built-in
// rules are always on.
type SoDConfig struct {
	// ConflictingRoles lists sets of roles nobody may hold together, such
	// as [developer, production-deployer].
	ConflictingRoles [][]string `yaml:"conflicting_roles,omitempty" json:"conflicting_roles,omitempty"`
	// EmergencyApproval is how long after an emergency change its request
	// may still be approved ("24h"). Default DefaultEmergencyApproval.
	EmergencyApproval time.Duration `yaml:"emergency_approval,omitempty" json:"emergency_approval,omitempty"`
	// Rules are organization conditions in CEL; see RuleConfig.
	Rules []RuleConfig `yaml:"rules,omitempty" json:"rules,omitempty"`
}

// RuleConfig is an organization rule: a CEL expression over change, actor,
// request and authority (docs/change-control.md lists the fields) that is
// true when the change violates the rule.
type RuleConfig struct {
	Name        string `yaml:"name" json:"name"`
	Description string `yaml:"description,omitempty" json:"description,omitempty"`
	Expr        string `yaml:"expr" json:"expr"`
	// Reason is reported on a violation; default sod_conflict.
	Reason Reason `yaml:"reason,omitempty" json:"reason,omitempty"`
}

// DefaultEmergencyApproval is the default time allowed to approve an
// emergency change after the fact: one day covers a night-time fix
// approved the next working morning, without leaving it open for a week.
const DefaultEmergencyApproval = 24 * time.Hour

// DefaultPackageManagerExes and DefaultPackageManagerComms identify package
// managers in who-data. dpkg does the writing for apt and
// unattended-upgrades; rpm for dnf and yum.
func DefaultPackageManagerExes() []string {
	return []string{"/usr/bin/dpkg", "/usr/bin/apt", "/usr/bin/apt-get", "/usr/bin/aptitude", "/usr/bin/rpm", "/usr/bin/dnf", "/usr/bin/yum"}
}

// DefaultPackageManagerComms is the comm (15-byte command name) half of
// the package manager list; see DefaultPackageManagerExes.
func DefaultPackageManagerComms() []string {
	return []string{"dpkg", "apt", "apt-get", "aptitude", "unattended-upgr", "rpm", "dnf", "yum"}
}

// ParseConfig decodes a YAML document holding the four sections, strictly:
// an unknown key is an error with its line. The result is not validated;
// Compile does that.
func ParseConfig(data []byte) (*Config, error) {
	var c Config
	d := yaml.NewDecoder(bytes.NewReader(data))
	d.KnownFields(true)
	if err := d.Decode(&c); err != nil {
		return nil, fmt.Errorf("parse change-control config: %w", err)
	}
	return &c, nil
}

// Classifier is a compiled Config: the directory of people and roles, the
// pipeline keys, and the SoD rules with their CEL programs compiled. It is
// immutable and safe for concurrent use.
type Classifier struct {
	people  map[string]*Person
	byLogin map[string]*Person
	byUID   map[uint32]*Person
	byAPI   map[string]*Person
	roles   map[string]*RoleConfig

	conflicts [][]string
	emergency time.Duration
	rules     []*rule
	keyring   *manifest.Keyring
	pipelines []manifest.Pipeline
	pkgExes   []string
	pkgComms  []string
}

// Keyring returns the registered pipeline keys, for manifest.Keyring.Open.
func (c *Classifier) Keyring() *manifest.Keyring { return c.keyring }

// Compile validates the config and compiles it. Every problem is reported
// at once, each with the section and entry it is in.
func (cfg *Config) Compile() (*Classifier, error) {
	c := &Classifier{
		people:    map[string]*Person{},
		byLogin:   map[string]*Person{},
		byUID:     map[uint32]*Person{},
		byAPI:     map[string]*Person{},
		roles:     map[string]*RoleConfig{},
		emergency: cmp.Or(cfg.SoD.EmergencyApproval, DefaultEmergencyApproval),
		pkgExes:   DefaultPackageManagerExes(),
		pkgComms:  DefaultPackageManagerComms(),
	}
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	for i := range cfg.Roles {
		r := &cfg.Roles[i]
		at := fmt.Sprintf("roles[%d] %q", i, r.Name)
		if r.Name == "" {
			bad("%s: name is empty", at)
			continue
		}
		if c.roles[r.Name] != nil {
			bad("%s: role defined twice", at)
		}
		for j, s := range r.Implement {
			if err := s.validate(); err != nil {
				bad("%s: implement[%d]: %v", at, j, err)
			}
		}
		c.roles[r.Name] = r
	}

	for i, pc := range cfg.People {
		at := fmt.Sprintf("people[%d] %q", i, pc.ID)
		if pc.ID == "" {
			bad("%s: id is empty", at)
			continue
		}
		if c.people[pc.ID] != nil {
			bad("%s: person defined twice", at)
			continue
		}
		p := &Person{ID: pc.ID, Name: pc.Name, Email: pc.Email, Roles: slices.Sorted(slices.Values(pc.Roles))}
		p.Roles = slices.Compact(p.Roles)
		for _, r := range p.Roles {
			if c.roles[r] == nil {
				bad("%s: unknown role %q", at, r)
			}
		}
		for _, l := range pc.Logins {
			if o := c.byLogin[l]; o != nil {
				bad("%s: login %q already belongs to %q", at, l, o.ID)
			}
			c.byLogin[l] = p
		}
		for _, u := range pc.UIDs {
			if u == NoAUID {
				bad("%s: uid %d is the unset login uid", at, u)
			}
			if o := c.byUID[u]; o != nil {
				bad("%s: uid %d already belongs to %q", at, u, o.ID)
			}
			c.byUID[u] = p
		}
		for _, a := range pc.API {
			if o := c.byAPI[a]; o != nil {
				bad("%s: API identity %q already belongs to %q", at, a, o.ID)
			}
			c.byAPI[a] = p
		}
		c.people[p.ID] = p
	}

	for i, set := range cfg.SoD.ConflictingRoles {
		at := fmt.Sprintf("sod.conflicting_roles[%d]", i)
		if len(set) < 2 {
			bad("%s: want at least two roles", at)
		}
		for _, r := range set {
			if c.roles[r] == nil {
				bad("%s: unknown role %q", at, r)
			}
		}
		c.conflicts = append(c.conflicts, slices.Clone(set))
	}
	if cfg.SoD.EmergencyApproval < 0 {
		bad("sod.emergency_approval: must not be negative")
	}

	env, err := newCELEnv()
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for i, rc := range cfg.SoD.Rules {
		at := fmt.Sprintf("sod.rules[%d] %q", i, rc.Name)
		if rc.Name == "" {
			bad("%s: name is empty", at)
		}
		if seen[rc.Name] {
			bad("%s: rule defined twice", at)
		}
		seen[rc.Name] = true
		r, err := compileRule(env, rc)
		if err != nil {
			bad("%s: %v", at, err)
			continue
		}
		c.rules = append(c.rules, r)
	}

	for i, p := range cfg.Pipelines {
		at := fmt.Sprintf("pipelines[%d] %q", i, p.ID)
		s := Scope{Paths: p.Paths, Hosts: p.Hosts}
		if err := s.validate(); err != nil {
			bad("%s: %v", at, err)
		}
		if len(p.Hosts) == 0 {
			bad("%s: hosts is empty (use [\"*\"] for every host)", at)
		}
		c.pipelines = append(c.pipelines, manifest.Pipeline{ID: p.ID, Key: p.Key, Hosts: p.Hosts, Paths: p.Paths})
	}
	if c.keyring, err = manifest.NewKeyring(c.pipelines); err != nil {
		errs = append(errs, err)
	}

	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("compile change-control config: %w", err)
	}
	return c, nil
}
