package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// errorTally counts client errors by message, to report the most common.
type errorTally struct {
	mu     sync.Mutex
	counts map[string]int
}

func (e *errorTally) add(err error) {
	msg := err.Error()
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		msg = pgErr.Severity + ": " + pgErr.Message
	}
	// pgconn prefixes the user, database and address; the cause follows
	// the last "(host): ". Without the prefix one cause stays one entry.
	if strings.HasPrefix(msg, "failed to connect to") {
		if k := strings.LastIndex(msg, "): "); k >= 0 {
			msg = msg[k+3:]
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.counts == nil {
		e.counts = map[string]int{}
	}
	e.counts[msg]++
}

// summary returns "N× message" for the most common errors.
func (e *errorTally) summary() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	type kv struct {
		msg string
		n   int
	}
	var all []kv
	for m, n := range e.counts {
		all = append(all, kv{m, n})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].n > all[j].n })
	var parts []string
	for i, x := range all {
		if i == 3 {
			break
		}
		parts = append(parts, fmt.Sprintf("%d× %s", x.n, x.msg))
	}
	return strings.Join(parts, "; ")
}

// runStorm starts clients goroutines at once; each connects, runs
// SELECT 1 and disconnects.
func runStorm(ctx context.Context, env *Env, t *Target, db string, clients int) Result {
	dsn := env.dsn(t.Port, db)
	ctx, cancel := context.WithTimeoutCause(ctx, stormLimit, errStormLimit)
	defer cancel()
	lat := make([]float64, clients)
	var failed atomic.Int64
	var errs errorTally
	var wg sync.WaitGroup
	start := time.Now()
	for i := range clients {
		wg.Go(func() {
			t0 := time.Now()
			conn, err := pgconn.Connect(ctx, dsn)
			if err == nil {
				_, err = conn.Exec(ctx, "SELECT 1").ReadAll()
				cerr := conn.Close(ctx)
				if err == nil {
					err = cerr
				}
			}
			if err != nil {
				failed.Add(1)
				if context.Cause(ctx) == errStormLimit {
					err = errStormLimit
				}
				errs.add(err)
				lat[i] = -1
				return
			}
			lat[i] = float64(time.Since(t0).Microseconds())
		})
	}
	wg.Wait()
	wall := time.Since(start)
	ok := lat[:0]
	var sum float64
	for _, v := range lat {
		if v >= 0 {
			ok = append(ok, v)
			sum += v
		}
	}
	r := Result{Failed: failed.Load(), Wall: wall}
	if len(ok) > 0 {
		r.TPS = float64(len(ok)) / wall.Seconds()
		r.AvgMs = sum / float64(len(ok)) / 1000
		r.P99Ms = percentile(ok, 0.99) / 1000
	}
	if r.Failed > 0 {
		r.Err = errs.summary()
	}
	return r
}

// stormLimit ends a storm run: clients not done by then count as failed.
// PostgreSQL itself logs in about 15 SCRAM clients a second on a busy
// 2-core machine; without a limit its storm cells alone take 3 minutes.
const stormLimit = 25 * time.Second

var errStormLimit = fmt.Errorf("not done within %s", stormLimit)

// idleLimit ends an idle run's logins: the clients not logged in by then
// count as failed. Only PostgreSQL itself is that slow.
const idleLimit = 30 * time.Second

// idleDialers bounds concurrent logins: the idle workload measures holding,
// not a storm.
const idleDialers = 64

// idleRefusedLimit ends an idle run's logins once this many were refused
// (PostgreSQL's max_connections): the rest would be refused too, and each
// refusal still costs PostgreSQL a fork.
const idleRefusedLimit = 100

// held is the outcome of holdClients.
type held struct {
	conns    []*pgconn.PgConn
	failed   int64 // logins that failed or were never tried
	errs     *errorTally
	wall     time.Duration // until the last login finished
	stallCut time.Duration // part of wall spent waiting for the stall to be detected
}

// holdClients logs n clients in (idleDialers at a time) and keeps them
// connected; with query each runs SELECT 1 first. It stops trying when no
// login has finished for env.idleStall (a session-mode pooler holds only as
// many clients as it has server connections) or after idleRefusedLimit
// failures (PostgreSQL's max_connections). The caller closes h.conns.
func holdClients(parent context.Context, env *Env, dsn string, n int, query bool) held {
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	var (
		mu       sync.Mutex
		conns    []*pgconn.PgConn
		failed   atomic.Int64
		finished atomic.Int64 // logins that succeeded or failed
		errs     errorTally
		wg       sync.WaitGroup
	)
	stalled := errors.New("stalled")
	refused := errors.New("refused")
	limited := fmt.Errorf("not logged in within %s", idleLimit)
	limit := time.AfterFunc(idleLimit, func() { cancel(limited) })
	defer limit.Stop()
	go func() {
		last, lastAt := int64(-1), time.Now()
		for ctx.Err() == nil {
			if n := finished.Load(); n != last {
				last, lastAt = n, time.Now()
			} else if time.Since(lastAt) > env.idleStall {
				cancel(stalled)
				return
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	sem := make(chan struct{}, idleDialers)
	start := time.Now()
	notTried := 0
	for i := 0; i < n; i++ {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			notTried = n - i
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			defer finished.Add(1)
			conn, err := pgconn.Connect(ctx, dsn)
			if err == nil && query {
				if _, err = conn.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
					conn.Close(context.Background())
				}
			}
			if err != nil {
				if failed.Add(1) >= idleRefusedLimit {
					cancel(refused)
				}
				switch context.Cause(ctx) {
				case stalled:
					err = fmt.Errorf("no login finished for %s (stalled)", env.idleStall)
				case refused:
					if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
						err = fmt.Errorf("canceled after %d refused logins", idleRefusedLimit)
					}
				case limited:
					err = limited
				}
				errs.add(err)
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
		})
	}
	wg.Wait()
	h := held{conns: conns, failed: failed.Load() + int64(notTried), errs: &errs, wall: time.Since(start)}
	cause := context.Cause(ctx)
	if cause == stalled {
		h.stallCut = env.idleStall
	}
	if notTried > 0 {
		why := "not attempted after the stall"
		switch cause {
		case refused:
			why = fmt.Sprintf("not attempted after %d refused logins", idleRefusedLimit)
		case limited:
			why = limited.Error()
		}
		errs.mu.Lock()
		if errs.counts == nil {
			errs.counts = map[string]int{}
		}
		errs.counts[why] += notTried
		errs.mu.Unlock()
	}
	return h
}

// runIdle connects clients and holds them without a query, then measures
// the proxy's memory while they are held (direct: PostgreSQL's growth).
func runIdle(ctx context.Context, env *Env, t *Target, db string, clients int) Result {
	serverRoots := env.serverPids()
	proxyRoots := rootsOf(t.proxyPid())
	serverBefore := treeUsage(serverRoots...).rssKB

	h := holdClients(ctx, env, env.dsn(t.Port, db), clients, false)
	defer closeAll(h.conns)
	r := Result{Held: len(h.conns), Failed: h.failed, Wall: h.wall}
	if r.Failed > 0 {
		r.Err = h.errs.summary()
	}
	if r.Held == 0 {
		return r
	}
	// Let the servers and poolers settle, then measure while held.
	select {
	case <-time.After(time.Second):
	case <-ctx.Done():
	}
	proxyHeld := treeUsage(proxyRoots...).rssKB
	serverHeld := treeUsage(serverRoots...).rssKB
	r.ProxyRSSKB = proxyHeld
	if len(proxyRoots) > 0 {
		r.MemPerClientK = float64(proxyHeld) / float64(r.Held)
	} else {
		r.MemPerClientK = float64(max(0, serverHeld-serverBefore)) / float64(r.Held)
	}
	r.TPS = float64(r.Held) / max(h.wall-h.stallCut, time.Millisecond).Seconds()
	return r
}

// fillPool holds n clients that each ran a query, then lets them go: a
// session-mode pooler opens a server connection per client and pgpool
// connects each child it hands a client to its backends.
func fillPool(ctx context.Context, env *Env, t *Target, db string, n int) (int, string) {
	h := holdClients(ctx, env, env.dsn(t.Port, db), n, true)
	closeAll(h.conns)
	errText := ""
	if h.failed > 0 {
		errText = h.errs.summary()
	}
	return len(h.conns), errText
}

func closeAll(conns []*pgconn.PgConn) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 256)
	for _, c := range conns {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = c.Close(ctx)
		})
	}
	wg.Wait()
}

func rootsOf(pid int) []int {
	if pid == 0 {
		return nil
	}
	return []int{pid}
}
