package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilfim/vigil/internal/fleet"
	"github.com/vigilfim/vigil/internal/store/sqlite"
)

// BenchmarkIngestThousandAgents times one group commit of one record from
// each of 1,000 agents, as the hub's committer makes under
// `go run ./bench/fleet load`, once each agent has 400 records stored; and
// the same rows inserted into a copy of fleet_records without its
// UNIQUE (agent_id, seq) index, which shows what that index costs there.
//
//	go test -run '^$' -bench IngestThousandAgents -benchtime 10x ./internal/store/sqlite/
func BenchmarkIngestThousandAgents(b *testing.B) {
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "hub.sqlite")
	d, err := sqlite.Open(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	const agents = 1000
	id := func(i int) string { return fmt.Sprintf("%032x", i) }
	for i := range agents {
		tok := []byte(id(i))
		if err := d.CreateEnrollToken(ctx, fleet.EnrollToken{Hash: tok, Group: "g", Expires: time.Now().Add(time.Hour), Creator: "b"}); err != nil {
			b.Fatal(err)
		}
		if _, err := d.Enroll(ctx, tok, time.Now(), fleet.Agent{ID: id(i), Host: id(i), CertSerial: "1"}); err != nil {
			b.Fatal(err)
		}
	}
	body := []byte(`{"path":"/etc/app/x.conf","pad":"` + strings.Repeat("x", 560) + `"}`)
	seq := uint64(0)
	group := func(per int) []fleet.Batch {
		bs := make([]fleet.Batch, agents)
		for i := range bs {
			bs[i].AgentID = id(i)
			for k := 1; k <= per; k++ {
				bs[i].Records = append(bs[i].Records, fleet.Record{Seq: seq + uint64(k), Kind: fleet.KindChange, Time: time.Now(), Body: body})
			}
		}
		seq += uint64(per)
		return bs
	}
	for range 20 {
		if _, err := d.Ingest(ctx, time.Now(), group(20)); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("fleet_records", func(b *testing.B) {
		for b.Loop() {
			if _, err := d.Ingest(ctx, time.Now(), group(1)); err != nil {
				b.Fatal(err)
			}
		}
	})
	d.Close()
	db, err := sql.Open("sqlite", path+"?_busy_timeout=10000&_journal_mode=WAL&_synchronous=FULL&_txlock=immediate")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `CREATE TABLE unindexed (rid INTEGER PRIMARY KEY AUTOINCREMENT, agent_id TEXT NOT NULL,
		seq INTEGER NOT NULL, kind TEXT NOT NULL, time_ns INTEGER NOT NULL, body BLOB NOT NULL);
		INSERT INTO unindexed (agent_id, seq, kind, time_ns, body) SELECT agent_id, seq, kind, time_ns, body FROM fleet_records ORDER BY rid`); err != nil {
		b.Fatal(err)
	}
	b.Run("without_unique_index", func(b *testing.B) {
		for b.Loop() {
			seq++
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				b.Fatal(err)
			}
			for c := 0; c < agents; c += 100 {
				args := make([]any, 0, 500)
				for i := c; i < c+100; i++ {
					args = append(args, id(i), int64(seq), fleet.KindChange, time.Now().UnixNano(), body)
				}
				if _, err := tx.ExecContext(ctx, "INSERT INTO unindexed (agent_id, seq, kind, time_ns, body) VALUES "+
					strings.TrimSuffix(strings.Repeat("(?,?,?,?,?),", 100), ","), args...); err != nil {
					b.Fatal(err)
				}
			}
			if err := tx.Commit(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
