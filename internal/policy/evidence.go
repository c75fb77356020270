package policy

import (
	"bytes"
	"path/filepath"
	"slices"
	"time"

	"gopkg.in/yaml.v3"
)

// Evidence configures the evidence log from the policy, so that every host
// under one policy sends its checkpoints to the same witnesses.
type Evidence struct {
	// Witness lists directories that receive a copy of every new
	// checkpoint (a mounted share, another disk): a witness copy only
	// moves forward, so a log rolled back or forked is caught there.
	Witness []string
	// CheckpointInterval is how often a long-running watch signs a
	// checkpoint while records arrive; 0 means the evidence package's
	// default.
	CheckpointInterval time.Duration
}

// Empty reports whether the section was absent.
func (e Evidence) Empty() bool { return len(e.Witness) == 0 && e.CheckpointInterval == 0 }

// Equal reports whether two evidence sections are the same.
func (e Evidence) Equal(o Evidence) bool {
	return slices.Equal(e.Witness, o.Witness) && e.CheckpointInterval == o.CheckpointInterval
}

var evidenceKeys = []string{"witness", "checkpoint_interval"}

func (p *parser) evidence(n *yaml.Node) Evidence {
	var ev Evidence
	f, _ := p.fields(n, "evidence", evidenceKeys, nil)
	if f == nil {
		return ev
	}
	if v, ok := f["witness"]; ok {
		if v.Kind != yaml.SequenceNode {
			p.errorf(v, "evidence.witness: expected a list of directories, found %s", describe(v))
		} else {
			for _, d := range v.Content {
				s, ok := p.str(d, "evidence.witness")
				if !ok {
					continue
				}
				if !filepath.IsAbs(s) {
					p.errorf(d, "evidence.witness: %q is not an absolute path", s)
					continue
				}
				ev.Witness = append(ev.Witness, filepath.Clean(s))
			}
		}
	}
	if v, ok := f["checkpoint_interval"]; ok {
		if s, ok := p.str(v, "evidence.checkpoint_interval"); ok {
			d, err := time.ParseDuration(s)
			switch {
			case err != nil:
				p.errorf(v, "evidence.checkpoint_interval: %q is not a duration (write e.g. 10s or 1m)", s)
			case d < time.Second || d > 24*time.Hour:
				p.errorf(v, "evidence.checkpoint_interval: %s is outside 1s to 24h", d)
			default:
				ev.CheckpointInterval = d
			}
		}
	}
	return ev
}

func writeEvidence(b *bytes.Buffer, ev Evidence) {
	if ev.Empty() {
		return
	}
	b.WriteString("evidence:\n")
	if len(ev.Witness) > 0 {
		b.WriteString("  witness:\n")
		for _, w := range ev.Witness {
			b.WriteString("    - ")
			writeScalar(b, w, false)
			b.WriteByte('\n')
		}
	}
	if ev.CheckpointInterval > 0 {
		b.WriteString("  checkpoint_interval: ")
		writeScalar(b, ev.CheckpointInterval.String(), false)
		b.WriteByte('\n')
	}
}
