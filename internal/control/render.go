package control

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigilfim/vigil/internal/change"
)

// csvHeader is the column list of WriteCSV; scripts depend on it.
var csvHeader = []string{"id", "time", "host", "path", "kind", "rule", "source", "person", "account", "authorized",
	"authority_kind", "authority_id", "authority_detail", "reasons", "request", "review", "disposition", "baseline", "explanation"}

// WriteCSV writes the population, one change per row (RFC 4180), with the
// authority or the reasons and the disposition of each exception.
func (r *Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(csvHeader); err != nil {
		return err
	}
	for _, c := range r.Changes {
		var kind, id, detail string
		if c.By != nil {
			kind, id, detail = string(c.By.Kind), c.By.ID, c.By.Detail
		}
		if err := cw.Write([]string{strconv.FormatInt(c.ID, 10), c.At.UTC().Format(time.RFC3339Nano), c.Host, c.Path, c.Kind,
			c.Rule, c.Source, c.Person, c.Account, strconv.FormatBool(c.Authorized), kind, id, detail, reasons(c.Reasons),
			c.Request, c.Review, c.Disposition, c.Baseline, c.Explanation}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func reasons(rs []change.Reason) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = string(r)
	}
	return strings.Join(s, " ")
}

// WriteText writes the report for people, section by section.
func (r *Report) WriteText(w io.Writer) error {
	ew := &errWriter{w: w}
	ew.printf("Change-control report %s to %s\n", r.From.Format(time.RFC3339), r.To.Format(time.RFC3339))
	ew.printf("%d changes, %d unauthorized (%.1f%%)\n\n", r.Totals.Total, r.Totals.Unauthorized, 100*r.Totals.Rate)
	ew.printf("All changes\n")
	tw := tabwriter.NewWriter(ew, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  ID\tTIME\tHOST\tPATH\tWHO\tVERDICT\n")
	for _, c := range r.Changes {
		who := c.Person
		if who == "" {
			who = c.Account
		}
		if who == "" {
			who = "-"
		}
		v := "unauthorized: " + reasons(c.Reasons)
		if c.Authorized && c.By != nil {
			v = fmt.Sprintf("authorized by %s %s", c.By.Kind, c.By.ID)
			if c.By.Detail != "" {
				v += " (" + c.By.Detail + ")"
			}
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\n", c.ID, c.At.UTC().Format(time.RFC3339), c.Host, c.Path, who, v)
	}
	tw.Flush()
	ew.printf("\nExceptions and their disposition\n")
	if len(r.Exceptions) == 0 {
		ew.printf("  none\n")
	}
	for _, c := range r.Exceptions {
		ew.printf("  %d %s %s: %s; review %s %s\n    %s\n", c.ID, c.Host, c.Path, reasons(c.Reasons), c.Review, c.Disposition, c.Explanation)
	}
	ew.printf("\nSegregation-of-duties violations by person\n")
	if len(r.SoD) == 0 {
		ew.printf("  none\n")
	}
	for _, s := range r.SoD {
		ew.printf("  %s: %d change(s)", s.Person, s.Count)
		for _, k := range change.AllReasons() {
			if n := s.Reasons[string(k)]; n > 0 {
				ew.printf(", %s %d", k, n)
			}
		}
		ew.printf("\n")
	}
	ew.printf("\nUnauthorized changes by path (rule)\n")
	for _, p := range r.ByPath {
		ew.printf("  %s: %d of %d (%.1f%%)\n", p.Key, p.Unauthorized, p.Total, 100*p.Rate)
	}
	ew.printf("\nUnauthorized changes by team and day\n")
	for _, t := range r.ByTeam {
		for _, d := range t.Days {
			ew.printf("  %s %s: %d of %d (%.1f%%)\n", t.Team, d.Key, d.Unauthorized, d.Total, 100*d.Rate)
		}
	}
	return ew.err
}

// errWriter keeps the first write error so a report is written without
// checking every line.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

func (e *errWriter) printf(format string, args ...any) { fmt.Fprintf(e, format, args...) }
