package change

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vigilfim/vigil/internal/fim"
)

func TestParseConfigExample(t *testing.T) {
	data, err := os.ReadFile("testdata/change-control.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	c, err := cfg.Compile()
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := c.Person("carol"); !ok || !p.HasRole("app-admins") {
		t.Fatalf("carol: %+v", p)
	}
	if c.emergency != 12*time.Hour || len(c.rules) != 2 || len(c.conflicts) != 1 {
		t.Fatalf("sod: emergency %s, %d rules, %d conflicts", c.emergency, len(c.rules), len(c.conflicts))
	}
	if got := c.Resolve(sudoActor(1003, "carol")); got == nil || got.ID != "carol" {
		t.Fatalf("resolve carol: %+v", got)
	}
}

func TestParseConfigStrict(t *testing.T) {
	_, err := ParseConfig([]byte("people:\n  - id: alice\n    login: alice\n"))
	if err == nil || !strings.Contains(err.Error(), "line 3: field login not found") {
		t.Fatalf("err = %v", err)
	}
}

func TestCompileErrors(t *testing.T) {
	k := newKeys(t)
	tests := []struct {
		name string
		edit func(*Config)
		msg  []string
	}{
		{"unknown role", func(c *Config) { c.People[0].Roles = append(c.People[0].Roles, "admins") }, []string{`people[0] "alice": unknown role "admins"`}},
		{"duplicate person", func(c *Config) { c.People[1].ID = "alice" }, []string{`people[1] "alice": person defined twice`}},
		{"duplicate login", func(c *Config) { c.People[1].Logins = []string{"alice"} }, []string{`people[1] "bob": login "alice" already belongs to "alice"`}},
		{"duplicate uid", func(c *Config) { c.People[1].UIDs = []uint32{1001} }, []string{`uid 1001 already belongs to "alice"`}},
		{"unset uid", func(c *Config) { c.People[1].UIDs = []uint32{NoAUID} }, []string{"is the unset login uid"}},
		{"duplicate role", func(c *Config) { c.Roles[1].Name = "app-admins" }, []string{`roles[1] "app-admins": role defined twice`}},
		{"bad scope", func(c *Config) { c.Roles[0].Implement[0].Paths = []string{"etc/app"} }, []string{`roles[0] "app-admins": implement[0]: path glob "etc/app" must be absolute`}},
		{"conflict of one", func(c *Config) { c.SoD.ConflictingRoles = [][]string{{"developer"}} }, []string{"sod.conflicting_roles[0]: want at least two roles"}},
		{"conflict unknown role", func(c *Config) { c.SoD.ConflictingRoles = [][]string{{"developer", "ops"}} }, []string{`unknown role "ops"`}},
		{"negative emergency", func(c *Config) { c.SoD.EmergencyApproval = -time.Hour }, []string{"must not be negative"}},
		{"bad key", func(c *Config) { c.Pipelines[0].Key = "nope" }, []string{`pipeline "deploy-app": key: malformed verifier id`}},
		{"key of another name", func(c *Config) { c.Pipelines[0].ID = "deploy-web" }, []string{`key is named "deploy-app", want the pipeline ID`}},
		{"pipeline without hosts", func(c *Config) { c.Pipelines[0].Hosts = nil }, []string{`pipelines[0] "deploy-app": hosts is empty`}},
		{"rule not bool", func(c *Config) { c.SoD.Rules = []RuleConfig{{Name: "r", Expr: `change.path`}} }, []string{`sod.rules[0] "r": expr must be a bool`}},
		{"rule unknown field", func(c *Config) { c.SoD.Rules = []RuleConfig{{Name: "r", Expr: `actor.shoe_size > 3`}} }, []string{"undefined field 'shoe_size'"}},
		{"rule syntax", func(c *Config) { c.SoD.Rules = []RuleConfig{{Name: "r", Expr: `change.path ==`}} }, []string{"compile expr"}},
		{"rule bad reason", func(c *Config) { c.SoD.Rules = []RuleConfig{{Name: "r", Expr: `true`, Reason: "bad_vibes"}} }, []string{`unknown reason "bad_vibes"`}},
		{"rule duplicate", func(c *Config) {
			c.SoD.Rules = []RuleConfig{{Name: "r", Expr: `true`}, {Name: "r", Expr: `false`}}
		}, []string{`sod.rules[1] "r": rule defined twice`}},
		{"every error at once", func(c *Config) {
			c.People[0].Roles = []string{"x"}
			c.Pipelines[0].Key = "nope"
		}, []string{`unknown role "x"`, "malformed verifier id"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(k.vkey)
			tc.edit(cfg)
			_, err := cfg.Compile()
			if err == nil {
				t.Fatal("compiled")
			}
			for _, m := range tc.msg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("err = %v\nwant %q", err, m)
				}
			}
		})
	}
}

func TestRules(t *testing.T) {
	k := newKeys(t)
	tests := []struct {
		name string
		rule RuleConfig
		edit func(*Input)
		want []Reason
		msg  string
	}{
		{name: "not violated", rule: RuleConfig{Name: "keys", Expr: `change.path.endsWith(".key")`}},
		{name: "violated", rule: RuleConfig{Name: "keys", Expr: `change.path.endsWith(".conf") && actor.person != "bob"`},
			want: []Reason{SoDConflict}, msg: `Rule "keys" is violated.`},
		{name: "own reason", rule: RuleConfig{Name: "office-hours", Reason: OutsideWindow,
			Expr: `change.time.getHours("Europe/Berlin") < 12`},
			want: []Reason{OutsideWindow}},
		{name: "request fields", rule: RuleConfig{Name: "two approvers", Expr: `request.present && size(request.approvers) < 2`},
			want: []Reason{SoDConflict}},
		{name: "no request", rule: RuleConfig{Name: "needs request", Expr: `!request.present && authority.kind == ""`},
			edit: func(in *Input) { in.Requests = nil }, want: []Reason{NoChangeRequest, SoDConflict}},
		{name: "authority", rule: RuleConfig{Name: "cr only", Expr: `authority.kind != "change_request"`}},
		{name: "roles", rule: RuleConfig{Name: "admins", Expr: `!("app-admins" in actor.roles)`}},
		{name: "who-data", rule: RuleConfig{Name: "root shells", Expr: `actor.known && actor.uid == 0 && actor.auid == -1`},
			edit: func(in *Input) { in.Actor = &Actor{UID: 0, User: "root"} }, want: []Reason{SoDConflict, UnknownActor}},
		{name: "attribution", rule: RuleConfig{Name: "audit only", Expr: `actor.known && actor.attribution != "audit"`},
			edit: func(in *Input) { a := *carol; a.Attribution = "proc"; in.Actor = &a }, want: []Reason{SoDConflict}},
		{name: "attrs", rule: RuleConfig{Name: "setuid", Expr: `change.new_mode >= 0 && change.new_mode % 4096 >= 2048`},
			edit: func(in *Input) { in.Change.New.Mode = 0o4755; in.Change.Changed = in.Change.Changed.With(fim.AttrMode) },
			want: []Reason{SoDConflict}},
		{name: "runtime error fails closed", rule: RuleConfig{Name: "div", Expr: `1 / (size(change.changed) - 4) == 0`},
			want: []Reason{SoDConflict}, msg: "could not be evaluated"},
		{name: "cost limit fails closed", rule: RuleConfig{Name: "slow",
			Expr: `[1,2,3,4,5,6,7,8,9,10].all(a, [1,2,3,4,5,6,7,8,9,10].all(b, [1,2,3,4,5,6,7,8,9,10].all(c, [1,2,3,4,5,6,7,8,9,10].all(d, [1,2,3,4,5,6,7,8,9,10].all(e, a+b+c+d+e > 0)))))`},
			want: []Reason{SoDConflict}, msg: "cost limit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(k.vkey)
			cfg.SoD.Rules = []RuleConfig{tc.rule}
			c := compile(t, cfg)
			in := baseInput()
			if tc.edit != nil {
				tc.edit(&in)
			}
			v := c.Classify(in)
			if !equalReasons(v.Reasons, tc.want) {
				t.Fatalf("reasons = %v, want %v\n%s", v.Reasons, tc.want, v.Explanation)
			}
			if !strings.Contains(v.Explanation, tc.msg) {
				t.Fatalf("explanation %q lacks %q", v.Explanation, tc.msg)
			}
		})
	}
}

func equalReasons(a, b []Reason) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func BenchmarkClassifyWithRule(b *testing.B) {
	cfg := testConfig(newKeys(b).vkey)
	cfg.SoD.Rules = []RuleConfig{{Name: "keys", Expr: `change.path.endsWith(".key") && !("security" in actor.roles)`}}
	c := compile(b, cfg)
	in := baseInput()
	for b.Loop() {
		if v := c.Classify(in); !v.Authorized {
			b.Fatal(v.Explanation)
		}
	}
}

// TestInlineDecode shows how the policy parser embeds Config: inline in
// its own top-level struct, decoded strictly in one pass.
func TestInlineDecode(t *testing.T) {
	type policyFile struct {
		Name   string `yaml:"name"`
		Config `yaml:",inline"`
	}
	data, err := os.ReadFile("testdata/change-control.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var pf policyFile
	d := yaml.NewDecoder(bytes.NewReader(append([]byte("name: example\n"), data...)))
	d.KnownFields(true)
	if err := d.Decode(&pf); err != nil {
		t.Fatal(err)
	}
	if pf.Name != "example" || len(pf.People) != 3 || pf.SoD.EmergencyApproval != 12*time.Hour {
		t.Fatalf("decoded %+v", pf)
	}
	if _, err := pf.Config.Compile(); err != nil {
		t.Fatal(err)
	}
	d = yaml.NewDecoder(strings.NewReader("name: x\nroles:\n  - name: r\n    approves: true\n"))
	d.KnownFields(true)
	if err := d.Decode(&pf); err == nil || !strings.Contains(err.Error(), "line 4: field approves not found") {
		t.Fatalf("unknown key: %v", err)
	}
}
