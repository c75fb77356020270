package change

import (
	"cmp"
	"fmt"
	"reflect"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/ext"
)

// The CEL variables an organization rule sees. Their field names (the cel
// tags) are the rule language's schema, documented in
// docs/change-control.md; a rule naming a field that does not exist fails
// to compile, not to evaluate.

// RuleChange is the variable `change`.
type RuleChange struct {
	Path    string    `cel:"path"`
	Kind    string    `cel:"kind"`    // added, removed, modified
	Changed []string  `cel:"changed"` // attribute names, for modified
	Host    string    `cel:"host"`
	Time    time.Time `cel:"time"`
	// OldContent and NewContent are "alg:hex" digests, "" when absent.
	OldContent string `cel:"old_content"`
	NewContent string `cel:"new_content"`
	// OldMode and NewMode are permission bits, -1 when absent.
	OldMode int64 `cel:"old_mode"`
	NewMode int64 `cel:"new_mode"`
	// NewUID and NewGID are the new owner, -1 when absent.
	NewUID int64 `cel:"new_uid"`
	NewGID int64 `cel:"new_gid"`
}

// RuleActor is the variable `actor`.
type RuleActor struct {
	Known  bool     `cel:"known"`  // who-data was available
	Person string   `cel:"person"` // "" when unmapped
	Roles  []string `cel:"roles"`
	UID    int64    `cel:"uid"`  // -1 without who-data
	AUID   int64    `cel:"auid"` // -1 when unset
	User   string   `cel:"user"`
	Login  string   `cel:"login_user"`
	Exe    string   `cel:"exe"`
	Comm   string   `cel:"comm"`
	// Attribution is "audit", "proc" or "" (see Actor.Attribution).
	Attribution string `cel:"attribution"`
}

// RuleRequest is the variable `request`: the change request the change was
// judged against, with present false when there is none.
type RuleRequest struct {
	Present      bool      `cel:"present"`
	ID           string    `cel:"id"`
	Title        string    `cel:"title"`
	Requester    string    `cel:"requester"`
	Implementers []string  `cel:"implementers"`
	Approvers    []string  `cel:"approvers"` // everyone who approved, valid or not
	Emergency    bool      `cel:"emergency"`
	State        string    `cel:"state"`
	WindowStart  time.Time `cel:"window_start"`
	WindowEnd    time.Time `cel:"window_end"`
}

// RuleAuthority is the variable `authority`: what would authorize the
// change before organization rules run; kind "" when nothing does.
type RuleAuthority struct {
	Kind string `cel:"kind"`
	ID   string `cel:"id"`
}

// defaultCostLimit bounds one rule's evaluation. Rules are per change and
// a scan can produce a million changes; 100,000 units is far beyond any
// sensible rule (a comparison costs about one) but stops a comprehension
// over a big list from stalling classification.
const defaultCostLimit = 100_000

// maxExprLen bounds a rule's source: rules are short conditions.
const maxExprLen = 8 << 10

type rule struct {
	name   string
	reason Reason
	prg    cel.Program
}

func newCELEnv() (*cel.Env, error) {
	env, err := cel.NewEnv(
		ext.NativeTypes(
			reflect.TypeFor[RuleChange](), reflect.TypeFor[RuleActor](),
			reflect.TypeFor[RuleRequest](), reflect.TypeFor[RuleAuthority](),
			ext.ParseStructTags(true),
		),
		ext.Strings(),
		cel.Variable("change", cel.ObjectType("change.RuleChange")),
		cel.Variable("actor", cel.ObjectType("change.RuleActor")),
		cel.Variable("request", cel.ObjectType("change.RuleRequest")),
		cel.Variable("authority", cel.ObjectType("change.RuleAuthority")),
		cel.ParserExpressionSizeLimit(maxExprLen),
	)
	if err != nil {
		return nil, fmt.Errorf("create CEL environment: %w", err)
	}
	return env, nil
}

// compileRule compiles a rule once; evaluation per change reuses the
// program.
func compileRule(env *cel.Env, rc RuleConfig) (*rule, error) {
	reason := cmp.Or(rc.Reason, SoDConflict)
	if !reason.Valid() {
		return nil, fmt.Errorf("unknown reason %q", rc.Reason)
	}
	if rc.Expr == "" {
		return nil, fmt.Errorf("expr is empty")
	}
	ast, iss := env.Compile(rc.Expr)
	if iss.Err() != nil {
		return nil, fmt.Errorf("compile expr: %w", iss.Err())
	}
	if ast.OutputType() != cel.BoolType {
		return nil, fmt.Errorf("expr must be a bool (true = violation), is %s", ast.OutputType())
	}
	prg, err := env.Program(ast, cel.CostLimit(defaultCostLimit), cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, fmt.Errorf("build program: %w", err)
	}
	return &rule{name: rc.Name, reason: reason, prg: prg}, nil
}

// eval reports whether the rule is violated. A rule that fails to evaluate
// (cost limit, a runtime error) counts as violated: an organization rule
// that can't be checked must not let a change through silently.
func (r *rule) eval(vars map[string]any) (bool, string) {
	out, _, err := r.prg.Eval(vars)
	if err != nil {
		return true, fmt.Sprintf("rule %q could not be evaluated (%v), counted as violated", r.name, err)
	}
	b, ok := out.Value().(bool)
	if !ok {
		return true, fmt.Sprintf("rule %q returned %v, not a bool, counted as violated", r.name, out)
	}
	if b {
		return true, fmt.Sprintf("rule %q is violated", r.name)
	}
	return false, ""
}
