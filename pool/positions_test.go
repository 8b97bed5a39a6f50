package pool

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/pgone/pgone/internal/pgtest"
)

// TestNudgeSamplesPositionsBetweenRounds: with rounds 30s apart, a commit's
// fence becomes known, and the replica's replay of it visible, within
// moments of Nudge: reads fenced behind a write need not wait for the next
// round to reach a replica.
func TestNudgeSamplesPositionsBetweenRounds(t *testing.T) {
	t.Parallel()
	c := pgtest.New(t, pgtest.Options{Replica: true})
	target := func(s *pgtest.Server) Target {
		return Target{Host: s.Host, Port: s.Port, Database: "postgres", User: "postgres", Password: "postgres"}
	}
	cfg := Config{ServerTLS: ServerTLS{SSLMode: "disable"}}
	cfg.Defaults()
	m := NewMonitor(MonitorConfig{Interval: 30 * time.Second, MaxLag: time.Minute}, cfg,
		target(c.Primary), []Target{target(c.Replica)}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	m.Start()
	t.Cleanup(m.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.WaitCheck(ctx); err != nil { // the first round runs at once
		t.Fatal(err)
	}
	if st := m.Status()[0]; st.State != ReplicaHealthy {
		t.Fatalf("after the first round: %+v, want healthy", st)
	}
	committed := time.Now()
	if err := c.Exec(ctx, "CREATE TABLE nudged (a int); INSERT INTO nudged VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for {
		v := m.View()
		if fence, ok := v.FenceAfter(committed); ok && v.Replicas[0].ReplayLSN >= fence {
			t.Logf("fence %v reached by the replica %s after the commit, between rounds", fence, time.Since(start))
			break
		}
		m.Nudge()
		select {
		case <-ctx.Done():
			t.Fatalf("no fence after the commit reached within 10s (rounds every 30s): view %+v", v.Replicas)
		case <-time.After(time.Millisecond):
		}
	}
	if got := m.Status()[0].CheckedAt; got.After(committed) {
		t.Fatalf("a round ran since the commit (%v): the test cannot tell a nudge from a round", got)
	}

	// PositionAfter asks for such a sample itself and waits for it: the
	// position covers the commit (past the primary's before it) and was
	// sampled before the primary's next position.
	direct, err := dial(ctx, &cfg, target(c.Primary))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.close()
	insertLSN := func() LSN {
		rows, err := direct.Query(ctx, "SELECT pg_catalog.pg_current_wal_insert_lsn()::text")
		if err != nil {
			t.Fatal(err)
		}
		lsn, err := decodeLSN(rows[0])
		if err != nil {
			t.Fatal(err)
		}
		return lsn
	}
	before := insertLSN()
	if err := c.Exec(ctx, "INSERT INTO nudged VALUES (2)"); err != nil {
		t.Fatal(err)
	}
	lsn, err := m.PositionAfter(ctx, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if after := insertLSN(); lsn <= before || lsn > after {
		t.Errorf("PositionAfter the commit = %s; want past %s (before it) and at most %s (after it)", lsn, before, after)
	}
}
