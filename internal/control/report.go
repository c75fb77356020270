package control

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"sort"
	"time"

	"github.com/vigilfim/vigil/internal/change"
	"github.com/vigilfim/vigil/internal/store"
)

// Report is the change-control report for a period: the complete
// population of classified changes, the exceptions (unauthorized changes)
// with their disposition, SoD violations by person, and the rate of
// unauthorized changes by path and by team per day.
type Report struct {
	From       time.Time   `json:"from"`
	To         time.Time   `json:"to"`
	Changes    []ReportRow `json:"changes"`
	Exceptions []ReportRow `json:"exceptions"`
	SoD        []SoDPerson `json:"sod_violations"`
	ByPath     []Rate      `json:"unauthorized_by_path"`
	ByTeam     []TeamRate  `json:"unauthorized_by_team"`
	Totals     Rate        `json:"totals"`
}

// ReportRow is one change of the population.
type ReportRow struct {
	ID      int64     `json:"id"`
	At      time.Time `json:"at"`
	Host    string    `json:"host"`
	Path    string    `json:"path"`
	Kind    string    `json:"kind,omitempty"`
	Rule    string    `json:"rule,omitempty"`
	Source  string    `json:"source"`
	Person  string    `json:"person,omitempty"`
	Account string    `json:"account,omitempty"`
	// Authorized and the authority (kind, ID, detail) or the reasons.
	Authorized  bool              `json:"authorized"`
	By          *change.Authority `json:"by,omitempty"`
	Reasons     []change.Reason   `json:"reasons,omitempty"`
	Request     string            `json:"request,omitempty"`
	Explanation string            `json:"explanation"`
	Baseline    string            `json:"baseline,omitempty"`
	// Review and Disposition: the review item of an unauthorized change
	// and how it stands ("open", "accepted by bob: ...").
	Review      string `json:"review,omitempty"`
	Disposition string `json:"disposition,omitempty"`
}

// SoDPerson counts one person's segregation-of-duties violations.
type SoDPerson struct {
	Person  string         `json:"person"`
	Count   int            `json:"count"`
	Reasons map[string]int `json:"reasons"`
	Changes []int64        `json:"changes"`
}

// Rate is how many of a group's changes were unauthorized.
type Rate struct {
	Key          string  `json:"key,omitempty"`
	Total        int     `json:"total"`
	Unauthorized int     `json:"unauthorized"`
	Rate         float64 `json:"rate"`
}

// TeamRate is a team's rate per day (UTC).
type TeamRate struct {
	Team string `json:"team"`
	Days []Rate `json:"days"` // Key is the date, YYYY-MM-DD
}

// sodReasons are the reasons that are segregation-of-duties findings.
var sodReasons = []change.Reason{change.SelfApproved, change.SoDConflict, change.EmergencyUnreviewed}

// unknownTeam groups changes no person with a role is behind.
const unknownTeam = "(unknown)"

// BuildReport reads the change events made in [from, to) and their review
// items and aggregates them. A person's team is each of their roles.
func (c *Controller) BuildReport(ctx context.Context, from, to time.Time) (*Report, error) {
	rep := &Report{From: from.UTC(), To: to.UTC(), Changes: []ReportRow{}, Exceptions: []ReportRow{}, SoD: []SoDPerson{}}
	reviews, err := c.st.Reviews(ctx, "")
	if err != nil {
		return nil, err
	}
	disp := map[string]string{}
	for _, it := range reviews {
		d := string(it.State)
		if it.Reviewer != "" {
			d += " by " + it.Reviewer
			if it.Decided != nil {
				d += " at " + it.Decided.UTC().Format(time.RFC3339)
			}
			if it.Note != "" {
				d += ": " + it.Note
			}
		}
		disp[it.ID] = d
	}
	byPath := map[string]*Rate{}
	team := map[string]map[string]*Rate{}
	sod := map[string]*SoDPerson{}
	err = c.st.Events(ctx, from, to, func(e store.ChangeEvent) error {
		row := ReportRow{ID: e.ID, At: e.At, Host: e.Host, Path: e.Path, Source: e.Source, Person: e.Verdict.Person,
			Account: accountOf(e.Actor), Authorized: e.Verdict.Authorized, By: e.Verdict.By, Reasons: e.Verdict.Reasons,
			Request: e.Verdict.Request, Explanation: e.Verdict.Explanation, Baseline: e.Baseline, Review: e.Review,
			Disposition: disp[e.Review]}
		var rec struct {
			Kind string `json:"kind"`
			Rule string `json:"rule"`
		}
		_ = json.Unmarshal(e.Change, &rec) // the record is informative here
		row.Kind, row.Rule = rec.Kind, rec.Rule
		rep.Changes = append(rep.Changes, row)
		if !row.Authorized {
			rep.Exceptions = append(rep.Exceptions, row)
		}
		count(&rep.Totals, row.Authorized)
		pk := row.Rule
		if pk == "" {
			pk = path.Dir(row.Path)
		}
		if byPath[pk] == nil {
			byPath[pk] = &Rate{Key: pk}
		}
		count(byPath[pk], row.Authorized)
		day := row.At.UTC().Format(time.DateOnly)
		for _, t := range c.teams(row.Person) {
			if team[t] == nil {
				team[t] = map[string]*Rate{}
			}
			if team[t][day] == nil {
				team[t][day] = &Rate{Key: day}
			}
			count(team[t][day], row.Authorized)
		}
		for _, r := range row.Reasons {
			if !slices.Contains(sodReasons, r) {
				continue
			}
			who := row.Person
			if who == "" {
				who = unknownTeam
				if row.Account != "" {
					who = "account " + row.Account
				}
			}
			sp := sod[who]
			if sp == nil {
				sp = &SoDPerson{Person: who, Reasons: map[string]int{}}
				sod[who] = sp
			}
			sp.Reasons[string(r)]++
			if len(sp.Changes) == 0 || sp.Changes[len(sp.Changes)-1] != row.ID {
				sp.Count++
				sp.Changes = append(sp.Changes, row.ID)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, r := range byPath {
		rep.ByPath = append(rep.ByPath, *r)
	}
	sort.Slice(rep.ByPath, func(i, j int) bool { return rep.ByPath[i].Key < rep.ByPath[j].Key })
	for t, days := range team {
		tr := TeamRate{Team: t}
		for _, r := range days {
			tr.Days = append(tr.Days, *r)
		}
		sort.Slice(tr.Days, func(i, j int) bool { return tr.Days[i].Key < tr.Days[j].Key })
		rep.ByTeam = append(rep.ByTeam, tr)
	}
	sort.Slice(rep.ByTeam, func(i, j int) bool { return rep.ByTeam[i].Team < rep.ByTeam[j].Team })
	for _, sp := range sod {
		rep.SoD = append(rep.SoD, *sp)
	}
	sort.Slice(rep.SoD, func(i, j int) bool { return rep.SoD[i].Person < rep.SoD[j].Person })
	return rep, nil
}

func count(r *Rate, authorized bool) {
	r.Total++
	if !authorized {
		r.Unauthorized++
	}
	r.Rate = float64(r.Unauthorized) / float64(r.Total)
}

// teams returns the person's roles, or the unknown team.
func (c *Controller) teams(person string) []string {
	if p, ok := c.cl.Person(person); ok && len(p.Roles) > 0 {
		return p.Roles
	}
	return []string{unknownTeam}
}

// Describe returns a one-line account of a verdict for people.
func Describe(v change.Verdict) string {
	if v.Authorized && v.By != nil {
		return fmt.Sprintf("authorized by %s %s", v.By.Kind, v.By.ID)
	}
	s := "unauthorized:"
	for _, r := range v.Reasons {
		s += " " + string(r)
	}
	return s
}
