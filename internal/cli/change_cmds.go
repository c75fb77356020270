package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigilfim/vigil/internal/baseline"
	"github.com/vigilfim/vigil/internal/change"
	"github.com/vigilfim/vigil/internal/control"
	"github.com/vigilfim/vigil/internal/evidence"
	"github.com/vigilfim/vigil/internal/fim"
	"github.com/vigilfim/vigil/internal/integrity"
	"github.com/vigilfim/vigil/internal/policy"
	"github.com/vigilfim/vigil/internal/record"
	"github.com/vigilfim/vigil/internal/signing"
	"github.com/vigilfim/vigil/internal/store"
)

// ccFlags are the flags of the change-control commands: where the
// baseline (and so the default store and the stored policy) is, the
// policy to use instead, and the store.
type ccFlags struct {
	db, policy, store string
}

func (f *ccFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&f.db, "db", "", "baseline file; the store and the policy default to the ones beside and in it")
	c.Flags().StringVar(&f.policy, "policy", "", "policy file with the people, roles, pipelines and sod sections (default: the policy stored in the baseline)")
	registerStoreFlag(c, &f.store)
}

func registerStoreFlag(c *cobra.Command, store *string) {
	c.Flags().StringVar(store, "store", "", "change-control store: a SQLite file or a postgres:// URL (default vigil.sqlite beside the baseline)")
}

// storeDSN is --store, or vigil.sqlite beside the baseline.
func storeDSN(sp statePaths, flag string) string {
	if flag != "" {
		return flag
	}
	return filepath.Join(filepath.Dir(sp.db), "vigil.sqlite")
}

// openControl opens the controller of a change-control command.
func openControl(ctx context.Context, f *ccFlags) (*control.Controller, statePaths, error) {
	sp, err := resolveState(f.db, "")
	if err != nil {
		return nil, sp, err
	}
	var pol *policy.Policy
	if f.policy != "" {
		pol, err = policy.Load(f.policy)
	} else {
		var r *baseline.Reader
		r, err = openBaseline(sp, "")
		if err != nil {
			return nil, sp, fmt.Errorf("%w (or name a policy with --policy)", err)
		}
		pol, err = policyOf(r, "")
		r.Close()
	}
	if err != nil {
		return nil, sp, err
	}
	ctl, err := control.Open(ctx, storeDSN(sp, f.store), pol, control.Options{})
	return ctl, sp, err
}

// baselineAcceptor takes authorized or reviewed changes into the baseline
// with integrity.Accept, under the baseline lock, with the policy stored
// in the baseline (the one its entries were recorded under).
type baselineAcceptor struct {
	sp     statePaths
	stderr interface{ Write([]byte) (int, error) }
}

func (a baselineAcceptor) Accept(ctx context.Context, paths []string, who *change.Actor, note string) error {
	by := baselineActor()
	if who != nil {
		by = baseline.Actor{UID: who.UID, User: who.User, AUID: change.NoAUID, LoginUser: who.LoginUser}
		if who.AUID != nil {
			by.AUID = *who.AUID
		}
	} else {
		note += "; made by an unknown actor, found by a check run by " + currentActor().String()
	}
	key, err := signing.Load(a.sp.key)
	if err != nil {
		return fmt.Errorf("load signing key: %w", err)
	}
	unlock, err := lockBaseline(a.sp)
	if err != nil {
		return err
	}
	defer unlock()
	r, err := openBaseline(a.sp, "")
	if err != nil {
		return err
	}
	pol, err := policyOf(r, "")
	r.Close()
	if err != nil {
		return err
	}
	pr := &problemPrinter{e: &env{stderr: a.stderr}}
	res, err := integrity.Accept(ctx, a.sp.db, key.Signer(), key.Verifier(), pol, paths, by, note, integrity.Options{}, pr)
	if err != nil {
		return err
	}
	if res.Problems > 0 {
		return fmt.Errorf("%d of the paths could not be read; they keep their baseline state", res.Problems)
	}
	return nil
}

// checkControl classifies the changes a check finds and settles them
// when it is done. It is nil (and does nothing) for a policy without
// change-control sections.
type checkControl struct {
	ctl      *control.Controller
	host     string
	now      time.Time
	findings []control.Finding
	err      error
}

func newCheckControl(ctx context.Context, e *env, sp statePaths, pol *policy.Policy, storeFlag string) (*checkControl, error) {
	if pol.ChangeControl.Empty() {
		return nil, nil
	}
	ctl, err := control.Open(ctx, storeDSN(sp, storeFlag), pol, control.Options{Now: e.now})
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	return &checkControl{ctl: ctl, host: host, now: e.now()}, nil
}

// results wraps the sink's results so each change record carries its
// verdict.
func (cc *checkControl) results(ctx context.Context, s sink) integrity.Results {
	if cc == nil {
		return results{s}
	}
	return classifyingResults{ctx: ctx, cc: cc, s: s}
}

type classifyingResults struct {
	ctx context.Context
	cc  *checkControl
	s   sink
}

func (r classifyingResults) Change(c *fim.Change, rule *policy.Rule) error {
	rec := record.New(c, rule)
	// A scan has no who-data: manifests and packages can still authorize,
	// a change request gives unknown_actor.
	v, err := r.cc.ctl.Classify(r.ctx, r.cc.host, c, r.cc.now, nil)
	if err != nil {
		return err
	}
	rec.Verdict = &v
	raw, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode change %q: %w", rec.Path, err)
	}
	// Keep copies: the scanner owns c and its entries.
	cp := *c
	if c.Old != nil {
		o := *c.Old
		cp.Old = &o
	}
	if c.New != nil {
		n := *c.New
		cp.New = &n
	}
	r.cc.findings = append(r.cc.findings, control.Finding{Host: r.cc.host, Source: control.SourceCheck, Change: &cp,
		Record: raw, At: r.cc.now, Verdict: v})
	return r.s.change(rec, c)
}

func (r classifyingResults) Problem(path string, err error) error {
	return results{r.s}.Problem(path, err)
}

// settle records the check's findings, accepts the authorized ones into
// the baseline and opens review items for the others; without --json it
// prints one line per change.
func (cc *checkControl) settle(ctx context.Context, e *env, sp statePaths, asJSON bool, record func(kind string, ev *store.ChangeEvent, body any) error) error {
	if cc == nil {
		return nil
	}
	defer cc.ctl.Close()
	evs, err := cc.ctl.Settle(ctx, cc.findings, baselineAcceptor{sp: sp, stderr: e.stderr})
	if err == nil {
		// Emergency changes authorized provisionally by earlier runs whose
		// approval deadline has passed.
		var late []store.ChangeEvent
		late, err = cc.ctl.Recheck(ctx)
		evs = append(evs, late...)
	}
	if rerr := recordSettlementsOf(evs, record); err == nil {
		err = rerr
	}
	if !asJSON && len(evs) > 0 {
		fmt.Fprintf(e.stdout, "\nchange control:\n")
		for _, ev := range evs {
			line := control.Describe(ev.Verdict)
			if ev.Source == control.SourceRecheck {
				line = "emergency change of " + ev.At.UTC().Format(time.RFC3339) + " now " + line
			}
			if ev.Review != "" {
				line += " (review " + ev.Review + ")"
			} else if ev.Baseline != "" {
				line += "; " + ev.Baseline
			}
			fmt.Fprintf(e.stdout, "  %s: %s\n", displayPath(ev.Path), line)
		}
	}
	return err
}

func newChangeCmd(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:   "change",
		Short: "Open, approve, reject, close, list and import change requests",
		Long: `Change requests say who may change what, where and when. The person acting is
the one running the command: the login uid (which survives su and sudo), else
the real uid, mapped through the policy's people section. See
docs/change-control.md.`,
	}
	c.AddCommand(newChangeOpenCmd(e), newChangeDecideCmd(e, "approve"), newChangeDecideCmd(e, "reject"),
		newChangeDecideCmd(e, "close"), newChangeListCmd(e), newChangeShowCmd(e), newChangeImportCmd(e))
	return c
}

func newChangeOpenCmd(e *env) *cobra.Command {
	var f ccFlags
	var r change.Request
	var start, end string
	var duration time.Duration
	c := &cobra.Command{
		Use:   "open ID --title TEXT --path GLOB... --implementer PERSON... [--host GLOB...] [--start TIME] (--end TIME | --for DURATION) [--emergency]",
		Short: "Open a change request, with you as its requester",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			r.ID = args[0]
			now := e.now().UTC()
			r.Window.Start = now
			if start != "" {
				t, err := time.Parse(time.RFC3339, start)
				if err != nil {
					return fmt.Errorf("--start: %w", err)
				}
				r.Window.Start = t.UTC()
			}
			switch {
			case end != "" && duration != 0:
				return errors.New("give --end or --for, not both")
			case end != "":
				t, err := time.Parse(time.RFC3339, end)
				if err != nil {
					return fmt.Errorf("--end: %w", err)
				}
				r.Window.End = t.UTC()
			case duration > 0:
				r.Window.End = r.Window.Start.Add(duration)
			default:
				return errors.New("give the end of the window with --end or --for")
			}
			ctl, _, err := openControl(c.Context(), &f)
			if err != nil {
				return err
			}
			defer ctl.Close()
			out, err := ctl.OpenRequest(c.Context(), r)
			if err != nil {
				return err
			}
			if err := recordAction(c.Context(), &f, ctl.Policy(), evidence.KindChangeRequest, map[string]any{"action": "open", "request": out}); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "opened %s by %s: %s, %s to %s\n", out.ID, out.Requester, out.Title,
				out.Window.Start.Format(time.RFC3339), out.Window.End.Format(time.RFC3339))
			return nil
		},
	}
	f.register(c)
	c.Flags().StringVar(&r.Title, "title", "", "what the change is")
	c.Flags().StringSliceVar(&r.Scope.Paths, "path", nil, "path glob the change may touch (repeatable; ** for any depth)")
	c.Flags().StringSliceVar(&r.Scope.Hosts, "host", nil, "host glob (repeatable; default every host)")
	c.Flags().StringSliceVar(&r.Implementers, "implementer", nil, "person ID who makes the change (repeatable)")
	c.Flags().StringVar(&start, "start", "", "start of the window, RFC 3339 (default now)")
	c.Flags().StringVar(&end, "end", "", "end of the window, RFC 3339")
	c.Flags().DurationVar(&duration, "for", 0, "length of the window")
	c.Flags().BoolVar(&r.Emergency, "emergency", false, "may be implemented before approval (must be approved within sod.emergency_approval)")
	return c
}

func newChangeDecideCmd(e *env, op string) *cobra.Command {
	var f ccFlags
	var note string
	short := map[string]string{
		"approve": "Approve a change request (not your own, nor one you implement)",
		"reject":  "Reject a change request",
		"close":   "Close a change request: later changes are not authorized by it",
	}[op]
	c := &cobra.Command{
		Use:   op + " ID",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			ctl, _, err := openControl(c.Context(), &f)
			if err != nil {
				return err
			}
			defer ctl.Close()
			var r change.Request
			switch op {
			case "approve":
				r, err = ctl.ApproveRequest(c.Context(), args[0], note)
			case "reject":
				r, err = ctl.RejectRequest(c.Context(), args[0], note)
			default:
				r, err = ctl.CloseRequest(c.Context(), args[0])
			}
			if err != nil {
				return err
			}
			kind := evidence.KindApproval
			if op == "close" {
				kind = evidence.KindChangeRequest
			}
			if err := recordAction(c.Context(), &f, ctl.Policy(), kind, map[string]any{"action": op, "note": note, "request": r}); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "%s is %s\n", r.ID, r.State)
			return nil
		},
	}
	f.register(c)
	if op != "close" {
		c.Flags().StringVar(&note, "note", "", "why (recorded with the decision)")
	}
	return c
}

func newChangeListCmd(e *env) *cobra.Command {
	var f ccFlags
	var asJSON bool
	c := &cobra.Command{
		Use:   "list",
		Short: "List change requests",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			ctl, _, err := openControl(c.Context(), &f)
			if err != nil {
				return err
			}
			defer ctl.Close()
			rs, err := ctl.Store().Requests(c.Context(), time.Time{}, time.Time{})
			if err != nil {
				return err
			}
			if asJSON {
				if rs == nil {
					rs = []change.Request{}
				}
				return writeJSON(e, rs)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "ID\tSTATE\tREQUESTER\tIMPLEMENTERS\tWINDOW\tTITLE\n")
			for _, r := range rs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s - %s\t%s\n", r.ID, r.State, r.Requester, strings.Join(r.Implementers, ","),
					r.Window.Start.Format(time.RFC3339), r.Window.End.Format(time.RFC3339), r.Title)
			}
			return tw.Flush()
		},
	}
	f.register(c)
	c.Flags().BoolVar(&asJSON, "json", false, "print the requests as a JSON array (the import format)")
	return c
}

func newChangeShowCmd(e *env) *cobra.Command {
	var f ccFlags
	c := &cobra.Command{
		Use:   "show ID",
		Short: "Print a change request as JSON",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			ctl, _, err := openControl(c.Context(), &f)
			if err != nil {
				return err
			}
			defer ctl.Close()
			r, err := ctl.Store().Request(c.Context(), args[0])
			if err != nil {
				return err
			}
			return writeJSON(e, r)
		},
	}
	f.register(c)
	return c
}

func newChangeImportCmd(e *env) *cobra.Command {
	var f ccFlags
	c := &cobra.Command{
		Use:   "import FILE",
		Short: "Import change requests from a JSON export (replacing those with the same IDs)",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			in, err := os.Open(args[0])
			if err != nil {
				return fmt.Errorf("import change requests: %w", err)
			}
			defer in.Close()
			ctl, _, err := openControl(c.Context(), &f)
			if err != nil {
				return err
			}
			defer ctl.Close()
			rs, err := ctl.Import(c.Context(), in)
			if err != nil {
				return err
			}
			if err := recordAction(c.Context(), &f, ctl.Policy(), evidence.KindChangeRequest, map[string]any{"action": "import", "requests": rs}); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "imported %d change request%s\n", len(rs), plural(len(rs)))
			return nil
		},
	}
	f.register(c)
	return c
}

func writeJSON(e *env, v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
