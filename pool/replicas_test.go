package pool

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgone/pgone/internal/pgtest"
)

func TestParseLSN(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want LSN
		bad  bool
	}{
		{in: "0/0", want: 0},
		{in: "0/3000148", want: 0x3000148},
		{in: "16/B374D848", want: 0x16_B374D848},
		{in: "FFFFFFFF/FFFFFFFF", want: 1<<64 - 1},
		{in: "", bad: true},
		{in: "3000148", bad: true},
		{in: "1/2/3", bad: true},
		{in: "G/0", bad: true},
		{in: "100000000/0", bad: true},
	} {
		got, err := ParseLSN(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("ParseLSN(%q) = %v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseLSN(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
		if back, _ := ParseLSN(got.String()); back != got {
			t.Errorf("%v does not survive String and ParseLSN", got)
		}
	}
}

// monitorOf starts a monitor of c's replica and records its state changes.
func monitorOf(t *testing.T, c *pgtest.Cluster, maxLag time.Duration) (*Monitor, func() []ReplicaState) {
	t.Helper()
	target := func(s *pgtest.Server) Target {
		return Target{Host: s.Host, Port: s.Port, Database: "postgres", User: "postgres", Password: "postgres"}
	}
	cfg := Config{ServerTLS: ServerTLS{SSLMode: "disable"}}
	cfg.Defaults()
	m := NewMonitor(MonitorConfig{Interval: 100 * time.Millisecond, MaxLag: maxLag}, cfg,
		target(c.Primary), []Target{target(c.Replica)}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	var mu sync.Mutex
	var seen []ReplicaState
	m.OnChange = func(i int, from, to ReplicaStatus) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, to.State)
	}
	m.Start()
	t.Cleanup(m.Stop)
	return m, func() []ReplicaState {
		mu.Lock()
		defer mu.Unlock()
		return append([]ReplicaState(nil), seen...)
	}
}

// waitState waits for the replica to reach want and returns its status.
func waitState(t *testing.T, m *Monitor, want ReplicaState, within time.Duration) ReplicaStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for {
		if st := m.Status()[0]; st.State == want {
			return st
		}
		if err := m.WaitCheck(ctx); err != nil {
			t.Fatalf("replica never %s within %s; last status %+v", want, within, m.Status()[0])
		}
	}
}

func TestMonitorReplicaDownAndBack(t *testing.T) {
	t.Parallel()
	c := pgtest.New(t, pgtest.Options{Replica: true})
	m, changes := monitorOf(t, c, 10*time.Second)
	st := waitState(t, m, ReplicaHealthy, 10*time.Second)
	if fence, ok := m.View().FenceAfter(time.Time{}); st.ReplayLSN == 0 || !ok || fence == 0 {
		t.Fatalf("healthy replica with replay LSN %v, primary's first fence %v (%v)", st.ReplayLSN, fence, ok)
	}
	if !st.Usable() {
		t.Fatal("a healthy replica is not usable")
	}
	if err := c.Replica.Stop(); err != nil {
		t.Fatal(err)
	}
	st = waitState(t, m, ReplicaDown, 10*time.Second)
	if st.Usable() || st.Err == "" {
		t.Fatalf("stopped replica: %+v, want unusable with an error", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Replica.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitState(t, m, ReplicaHealthy, 20*time.Second)
	if err := m.WaitCheck(ctx); err != nil { // the change is reported by the end of its round
		t.Fatal(err)
	}
	// Healthy, down, healthy again (a restarting replica may lag a moment).
	got := changes()
	if len(got) < 3 || got[0] != ReplicaHealthy || got[len(got)-1] != ReplicaHealthy || !slices.Contains(got, ReplicaDown) {
		t.Fatalf("state changes %v, want healthy, down, ..., healthy", got)
	}
}

// TestMonitorLaggingReplica: a replica that applies WAL 2s late leaves the
// rotation after a write (limit 500ms) and returns once it has applied it.
func TestMonitorLaggingReplica(t *testing.T) {
	t.Parallel()
	c := pgtest.New(t, pgtest.Options{Replica: true, ReplicaSettings: map[string]string{"recovery_min_apply_delay": "2s"}})
	m, _ := monitorOf(t, c, 500*time.Millisecond)
	waitState(t, m, ReplicaHealthy, 15*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Exec(ctx, "CREATE TABLE lag_probe (a int); INSERT INTO lag_probe VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	st := waitState(t, m, ReplicaLagging, 5*time.Second)
	if st.LagBytes <= 0 || st.Lag <= 500*time.Millisecond || st.Usable() {
		t.Fatalf("lagging replica: %+v", st)
	}
	st = waitState(t, m, ReplicaHealthy, 15*time.Second)
	if st.LagBytes != 0 && st.Lag > 500*time.Millisecond {
		t.Fatalf("healthy again with lag %s (%d bytes)", st.Lag, st.LagBytes)
	}
}

// TestFenceAfter: the fence of a commit at t is the first position sampled
// after t; none while no sample is that recent.
func TestFenceAfter(t *testing.T) {
	t.Parallel()
	base := time.Now()
	v := NewReplicaView(nil, []Fence{{At: base, LSN: 10}, {At: base.Add(time.Second), LSN: 20}, {At: base.Add(2 * time.Second), LSN: 30}})
	for _, tc := range []struct {
		at   time.Duration
		want LSN
		ok   bool
	}{
		{-time.Second, 10, true}, // older than every sample: the oldest covers it
		{0, 20, true},            // a sample taken at the same instant may not cover it
		{500 * time.Millisecond, 20, true},
		{1500 * time.Millisecond, 30, true},
		{2 * time.Second, 0, false},
		{3 * time.Second, 0, false},
	} {
		got, ok := v.FenceAfter(base.Add(tc.at))
		if got != tc.want || ok != tc.ok {
			t.Errorf("FenceAfter(base%+v) = %v, %v; want %v, %v", tc.at, got, ok, tc.want, tc.ok)
		}
	}
	if _, ok := (*ReplicaView)(nil).FenceAfter(base); ok {
		t.Error("a nil view has a fence")
	}
}

// TestMonitorQuietAfterPartialRecord: the primary goes quiet after a large
// asynchronous write whose last record is only partly written: the flush
// position ends a WAL page inside that record, and the replica, which
// replays whole records, stays bytes short of it for as long as the
// primary is quiet (the replica "184 bytes behind"). It has all
// there is to replay: the monitor must report lag 0 and keep it healthy.
func TestMonitorQuietAfterPartialRecord(t *testing.T) {
	t.Parallel()
	// Small WAL buffers make the backend write whole pages itself; the
	// WAL writer, which would flush the rest, sleeps 10s.
	c := pgtest.New(t, pgtest.Options{Replica: true, Settings: map[string]string{
		"wal_buffers": "64kB", "wal_writer_delay": "10s", "synchronous_commit": "off"}})
	const maxLag = 300 * time.Millisecond
	m, changes := monitorOf(t, c, maxLag)
	waitState(t, m, ReplicaHealthy, 15*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Exec(ctx, "CREATE TABLE quiet (a int); INSERT INTO quiet SELECT generate_series(1, 20000)"); err != nil {
		t.Fatal(err)
	}
	// The write itself may outrun the replica for a moment; once it is
	// healthy again the primary stays quiet: five times the lag limit of
	// rounds with no state change.
	waitState(t, m, ReplicaHealthy, 10*time.Second)
	before := len(changes())
	for end := time.Now().Add(5 * maxLag); time.Now().Before(end); {
		if err := m.WaitCheck(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// The case under test: the replica is behind the flush position.
	primary, err := pgx.Connect(ctx, c.Primary.DSN(pgtest.SuperUser, pgtest.SuperPassword, "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer primary.Close(context.Background())
	var behind int64
	if err := primary.QueryRow(ctx, "SELECT pg_current_wal_flush_lsn() - $1::text::pg_lsn", m.Status()[0].ReplayLSN.String()).Scan(&behind); err != nil {
		t.Fatal(err)
	}
	if behind <= 0 {
		t.Fatalf("the replica replayed everything flushed (%d bytes behind): the test cannot show the partial record", behind)
	}
	t.Logf("replica %d bytes behind the flush position, status %+v", behind, m.Status()[0])
	if st := m.Status()[0]; st.State != ReplicaHealthy || st.LagBytes != 0 || st.Lag != 0 {
		t.Errorf("quiet replica short of a partial record: %+v; want healthy with lag 0", st)
	}
	if got := changes(); len(got) != before {
		t.Errorf("state changes %v during the quiet period (after %d): the quiet replica left the healthy state", got, before)
	}
}
