package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Workloads pgbench cannot measure honestly run as Go clients: pgbench
// reports a transaction's latency, and a dashboard of four different
// aggregates wants each statement's own percentiles. Each client holds
// one connection (logged in before the clock starts), picks a statement
// by weight, sends it with the extended protocol (unnamed statement, text
// parameters, as a driver without a statement cache does, which every
// pooler in transaction mode supports) and times it from send to the end
// of its reply.

// Op is one statement a mix runs.
type Op struct {
	Name string // per-statement row in the report
	SQL  string
	// Args returns the statement's text parameters; nil: none.
	Args func(r *rand.Rand) []string
	// Weight is the op's share of the clients' statements.
	Weight int
	// Version: the first column of the first row is the version the
	// writer publishes (stale.go); the read is checked against it.
	Version bool
}

// Writer is a mix's background writer: one connection, one statement at
// the start and then every Every, for the whole run.
type Writer struct {
	Name  string
	SQL   string
	Every time.Duration
	Args  func(r *rand.Rand) []string
	// Version: the statement returns the new version (RETURNING), which
	// is recorded with the time its reply arrived; VersionSQL reads the
	// current one before the run.
	Version    bool
	VersionSQL string
}

// Mix is a Go-client workload.
type Mix struct {
	Ops    []Op
	Writer *Writer
}

// StmtStat is one statement's latency over a run.
type StmtStat struct {
	Name   string  `json:"name"`
	N      int64   `json:"n"`
	Failed int64   `json:"failed,omitempty"`
	AvgMs  float64 `json:"avg_ms"`
	P50Ms  float64 `json:"p50_ms"`
	P99Ms  float64 `json:"p99_ms"`
}

// mixClient is one client's record of a run; only its goroutine writes it.
type mixClient struct {
	lat    map[string][]float64 // µs by op name
	failed map[string]int64
	reads  []versionRead
}

// pick returns an op by weight.
func (m *Mix) pick(r *rand.Rand) *Op {
	total := 0
	for i := range m.Ops {
		total += m.Ops[i].Weight
	}
	n := r.IntN(max(total, 1))
	for i := range m.Ops {
		if n < m.Ops[i].Weight {
			return &m.Ops[i]
		}
		n -= m.Ops[i].Weight
	}
	return &m.Ops[len(m.Ops)-1]
}

// runMix runs w's mix with clients clients against t for env.duration.
func runMix(ctx context.Context, env *Env, t *Target, db string, w *Workload, clients int) Result {
	dsn := env.dsn(t.Port, db)
	h := holdClients(ctx, env, dsn, clients, false)
	defer closeAll(h.conns)
	if len(h.conns) < clients {
		return Result{Failed: h.failed, Err: fmt.Sprintf("%d of %d clients could not log in: %s", clients-len(h.conns), clients, h.errs.summary())}
	}
	var wr *writerRun
	if w.Mix.Writer != nil {
		var err error
		if wr, err = startWriter(ctx, dsn, w.Mix.Writer); err != nil {
			return Result{Err: "writer: " + err.Error()}
		}
	}
	var errs errorTally
	recs := make([]mixClient, clients)
	start := time.Now()
	deadline := start.Add(env.duration)
	var wg sync.WaitGroup
	for i, conn := range h.conns {
		wg.Go(func() { recs[i] = mixLoop(ctx, deadline, conn, w.Mix, uint64(i), &errs) })
	}
	wg.Wait()
	wall := env.duration
	res := Result{Wall: time.Since(start)}
	if wr != nil {
		writes, committed, werr := wr.stop()
		res.Writes = committed
		if werr != nil {
			res.Err = "writer: " + werr.Error()
		}
		var reads []versionRead
		for _, c := range recs {
			reads = append(reads, c.reads...)
		}
		if w.Mix.Writer.Version {
			sc := countStale(writes, reads)
			res.VersionReads, res.StaleReads, res.StaleLag = sc.Reads, sc.Stale, sc.WorstLag
		}
	}
	summarizeMix(&res, recs, wall)
	if res.Failed > 0 && res.Err == "" {
		res.Err = errs.summary()
	}
	return res
}

// mixLoop is one client: statements until deadline. The statement running
// at the deadline finishes but is not counted: canceling it would leave
// its query running on the server (PostgreSQL notices a closed client only
// when it next writes to it) and charge the next target's cell for it.
func mixLoop(ctx context.Context, deadline time.Time, conn *pgconn.PgConn, m *Mix, seed uint64, errs *errorTally) mixClient {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	c := mixClient{lat: map[string][]float64{}, failed: map[string]int64{}}
	for ctx.Err() == nil && time.Now().Before(deadline) {
		op := m.pick(r)
		var args []string
		if op.Args != nil {
			args = op.Args(r)
		}
		began := time.Now()
		res := conn.ExecParams(ctx, op.SQL, textParams(args), nil, nil, nil).Read()
		took := time.Since(began)
		if ctx.Err() != nil || time.Now().After(deadline) {
			break
		}
		if res.Err != nil {
			c.failed[op.Name]++
			errs.add(res.Err)
			if conn.IsClosed() {
				break
			}
			continue
		}
		c.lat[op.Name] = append(c.lat[op.Name], float64(took.Microseconds()))
		if op.Version {
			if v, err := firstInt(res.Rows); err == nil {
				c.reads = append(c.reads, versionRead{Version: v, Began: began})
			} else {
				c.failed[op.Name]++
				errs.add(err)
			}
		}
	}
	return c
}

// summarizeMix fills res's throughput, latency and per-statement numbers
// from the clients' records.
func summarizeMix(res *Result, recs []mixClient, wall time.Duration) {
	byOp := map[string][]float64{}
	failed := map[string]int64{}
	for _, c := range recs {
		for name, l := range c.lat {
			byOp[name] = append(byOp[name], l...)
		}
		for name, n := range c.failed {
			failed[name] += n
			res.Failed += n
		}
	}
	var all []float64
	var sum float64
	names := make([]string, 0, len(byOp))
	for name := range byOp {
		names = append(names, name)
	}
	for name := range failed {
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		l := byOp[name]
		st := StmtStat{Name: name, N: int64(len(l)), Failed: failed[name]}
		var s float64
		for _, v := range l {
			s += v
		}
		sum += s
		all = append(all, l...)
		if len(l) > 0 {
			st.AvgMs = s / float64(len(l)) / 1000
			st.P50Ms = percentile(l, 0.5) / 1000
			st.P99Ms = percentile(l, 0.99) / 1000
		}
		res.Stmts = append(res.Stmts, st)
	}
	res.Tx = int64(len(all))
	if len(all) == 0 {
		if res.Err == "" {
			res.Err = "no statement completed"
		}
		return
	}
	res.TPS = float64(len(all)) / wall.Seconds()
	res.AvgMs = sum / float64(len(all)) / 1000
	res.P50Ms = percentile(all, 0.5) / 1000
	res.P99Ms = percentile(all, 0.99) / 1000
}

// writerRun is a running Writer.
type writerRun struct {
	stopc chan struct{}
	done  chan struct{}
	// writes are the versions known committed: the one read before the
	// run, then each write's.
	writes    []versionWrite
	committed int64 // statements committed during the run
	err       error
}

// startWriter connects and starts w's loop; with w.Version it first
// records the current version as committed (it is: the read saw it).
func startWriter(ctx context.Context, dsn string, w *Writer) (*writerRun, error) {
	conn, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	wr := &writerRun{stopc: make(chan struct{}), done: make(chan struct{})}
	if w.Version {
		rows, err := execRows(ctx, conn, w.VersionSQL, nil)
		if err == nil {
			var v int64
			if v, err = firstInt(rows); err == nil {
				wr.writes = append(wr.writes, versionWrite{Version: v, Acked: time.Now()})
			}
		}
		if err != nil {
			conn.Close(context.Background())
			return nil, err
		}
	}
	go func() {
		defer close(wr.done)
		defer conn.Close(context.Background())
		r := rand.New(rand.NewPCG(1, 0x3717e))
		tick := time.NewTicker(w.Every)
		defer tick.Stop()
		for first := true; ; first = false {
			if !first {
				select {
				case <-ctx.Done():
					return
				case <-wr.stopc:
					return
				case <-tick.C:
				}
			}
			var args []string
			if w.Args != nil {
				args = w.Args(r)
			}
			// A write in flight when the run ends finishes (stop waits):
			// cut off, its outcome would be unknown.
			rows, err := execRows(ctx, conn, w.SQL, args)
			acked := time.Now()
			if ctx.Err() != nil {
				return // interrupted: an unknown outcome binds no read
			}
			if err != nil {
				wr.err = err
				return
			}
			wr.committed++
			if w.Version {
				v, err := firstInt(rows)
				if err != nil {
					wr.err = err
					return
				}
				wr.writes = append(wr.writes, versionWrite{Version: v, Acked: acked})
			}
		}
	}()
	return wr, nil
}

// stop ends the writer and returns the versions known committed and how
// many statements it committed.
func (wr *writerRun) stop() ([]versionWrite, int64, error) {
	close(wr.stopc)
	<-wr.done
	return wr.writes, wr.committed, wr.err
}

func execRows(ctx context.Context, conn *pgconn.PgConn, sql string, args []string) ([][][]byte, error) {
	res := conn.ExecParams(ctx, sql, textParams(args), nil, nil, nil).Read()
	return res.Rows, res.Err
}

func textParams(args []string) [][]byte {
	if len(args) == 0 {
		return nil
	}
	out := make([][]byte, len(args))
	for i, a := range args {
		out[i] = []byte(a)
	}
	return out
}

// firstInt reads the first column of the first row as an integer.
func firstInt(rows [][][]byte) (int64, error) {
	if len(rows) == 0 || len(rows[0]) == 0 || rows[0][0] == nil {
		return 0, fmt.Errorf("want a version in the first column, got %d rows", len(rows))
	}
	return strconv.ParseInt(string(rows[0][0]), 10, 64)
}
