package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// opTimeout bounds one request: a frozen replica must not hang a client
// for the rest of the run.
const opTimeout = 15 * time.Second

// outcome is what a writer knows about one write.
type outcome int

const (
	// acked: the statement or COMMIT succeeded; the ids must be there.
	acked outcome = iota
	// rolledBack: pgone said 08006 (rolled back), the server said ROLLBACK
	// to COMMIT, or COMMIT was never sent; the ids must not be there.
	rolledBack
	// unknown: 08007, a lost connection, a timeout; either way is right,
	// but never twice.
	unknown
)

// counters are shared by every client; the fault schedule watches acks
// to time the recovery after each fault.
type counters struct {
	acks, writeErrs, reads, readErrs, rywChecks atomic.Int64

	start time.Time // the load's start, for error times

	mu      sync.Mutex
	errs    map[string]int              // "write 08006", "read conn"... -> count
	errAt   map[string][2]time.Duration // first and last time of each kind
	rywMiss []string                    // the first misses, for the report
	nMiss   int
}

func (c *counters) countErr(kind string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.errs == nil {
		c.errs, c.errAt = map[string]int{}, map[string][2]time.Duration{}
	}
	k, at := kind+" "+errCode(err), time.Since(c.start)
	c.errs[k]++
	span, ok := c.errAt[k]
	if !ok {
		span[0] = at
	}
	span[1] = at
	c.errAt[k] = span
}

func (c *counters) missedOwnWrite(what string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nMiss++
	if len(c.rywMiss) < 10 {
		c.rywMiss = append(c.rywMiss, what)
	}
}

// errorCounts returns the error kinds sorted by name: kind, count, and
// when the first and last happened.
func (c *counters) errorCounts() [][2]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := make([]string, 0, len(c.errs))
	for k := range c.errs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([][2]string, len(keys))
	for i, k := range keys {
		at := c.errAt[k]
		out[i] = [2]string{k, fmt.Sprintf("%d (first at %s, last at %s)", c.errs[k], at[0].Round(100*time.Millisecond), at[1].Round(100*time.Millisecond))}
	}
	return out
}

// errLoadEnded marks a request still in flight when the load's time was up.
var errLoadEnded = errors.New("load ended")

// errCode names an error for counting: its SQLSTATE, or what kind of
// failure it was.
func errCode(err error) string {
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &pe):
		return pe.Code
	case errors.Is(err, errLoadEnded):
		return "cut off by the end of the load"
	case errors.Is(err, pgx.ErrTxCommitRollback):
		return "commit-rolled-back"
	case errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err):
		return "timeout"
	}
	return "connection"
}

// classify turns a write's error into what the writer may conclude.
// committing says whether COMMIT (or an autocommit statement) was sent.
func classify(err error, committing bool) outcome {
	if err == nil {
		return acked
	}
	if !committing || errors.Is(err, pgx.ErrTxCommitRollback) {
		return rolledBack
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "08006" {
		return rolledBack
	}
	return unknown
}

// ledger is one writer's record of its ids, read after it stops.
type ledger struct {
	acked, rolledBack, unknown []int64
	// why says, for each id of unknown outcome, how it was written and
	// what the client was told, for the report.
	why map[int64]string
}

func (l *ledger) record(o outcome, ids ...int64) {
	switch o {
	case acked:
		l.acked = append(l.acked, ids...)
	case rolledBack:
		l.rolledBack = append(l.rolledBack, ids...)
	default:
		l.unknown = append(l.unknown, ids...)
	}
}

func (l *ledger) explain(why string, ids ...int64) {
	if l.why == nil {
		l.why = map[int64]string{}
	}
	for _, id := range ids {
		l.why[id] = why
	}
}

// client is what writers and readers share: a connection they replace
// after any error.
type client struct {
	n     int
	dsn   string
	think time.Duration
	c     *counters
	conn  *pgx.Conn
}

// connect (re)opens the connection, retrying until ctx ends.
func (cl *client) connect(ctx context.Context) bool {
	for attempt := 0; ctx.Err() == nil; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, opTimeout)
		conn, err := pgx.Connect(cctx, cl.dsn)
		cancel()
		if err == nil {
			cl.conn = conn
			return true
		}
		cl.c.countErr("connect", err)
		pause(ctx, time.Duration(min(attempt+1, 10))*100*time.Millisecond)
	}
	return false
}

// drop closes the connection after an error: its state is unknown.
func (cl *client) drop() {
	if cl.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = cl.conn.Close(ctx)
		cancel()
		cl.conn = nil
	}
}

func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// writer inserts ids of its own, three ways in turn: an autocommit INSERT
// with the extended protocol (pgx's statement cache), the same with the
// simple protocol, and an explicit transaction of two INSERTs. After each
// acknowledged write it reads the id back on the same connection.
type writer struct {
	client
	seq int64
	l   ledger
}

const insertSQL = "INSERT INTO ledger (id, writer, payload) VALUES ($1, $2, $3)"

func (w *writer) nextID() int64 {
	w.seq++
	return int64(w.n)<<40 | w.seq
}

func (w *writer) run(ctx context.Context) {
	defer w.drop()
	for i := 0; ctx.Err() == nil; i++ {
		if w.conn == nil && !w.connect(ctx) {
			return
		}
		var err error
		switch i % 3 {
		case 0:
			err = w.autocommit(ctx, "autocommit INSERT (extended)")
		case 1:
			err = w.autocommit(ctx, "autocommit INSERT (simple)", pgx.QueryExecModeSimpleProtocol)
		default:
			err = w.transaction(ctx)
		}
		if err != nil {
			w.drop()
		}
		pause(ctx, w.think)
	}
}

func (w *writer) autocommit(ctx context.Context, how string, mode ...any) error {
	id := w.nextID()
	octx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	_, err := w.conn.Exec(octx, insertSQL, append(mode, id, w.n, fmt.Sprintf("w%d-%d", w.n, id))...)
	return w.settle(ctx, how, err, true, id)
}

func (w *writer) transaction(ctx context.Context) error {
	ids := []int64{w.nextID(), w.nextID()}
	octx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	const how = "BEGIN; INSERT; INSERT; COMMIT"
	tx, err := w.conn.Begin(octx)
	if err != nil {
		return w.settle(ctx, how, err, false, ids...)
	}
	for _, id := range ids {
		if _, err := tx.Exec(octx, insertSQL, id, w.n, fmt.Sprintf("w%d-%d", w.n, id)); err != nil {
			return w.settle(ctx, how, err, false, ids...)
		}
	}
	return w.settle(ctx, how, tx.Commit(octx), true, ids...)
}

// settle records the outcome of a write and, if acknowledged, reads its
// last id back: with read_your_writes it must be visible at once.
func (w *writer) settle(ctx context.Context, how string, err error, committing bool, ids ...int64) error {
	o := classify(err, committing)
	w.l.record(o, ids...)
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w: %w", errLoadEnded, err)
		} else {
			w.c.writeErrs.Add(1)
		}
		if o == unknown {
			w.l.explain(fmt.Sprintf("%s at %s: %s: %v", how, time.Since(w.c.start).Round(100*time.Millisecond), errCode(err), err), ids...)
		}
		w.c.countErr("write", err)
		return err
	}
	w.c.acks.Add(1)
	id := ids[len(ids)-1]
	octx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	var n int
	if err := w.conn.QueryRow(octx, "SELECT count(*) FROM ledger WHERE id = $1", id).Scan(&n); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w: %w", errLoadEnded, err)
		} else {
			w.c.readErrs.Add(1)
		}
		w.c.countErr("read-own-write", err)
		return err
	}
	w.c.rywChecks.Add(1)
	if n != 1 {
		w.c.missedOwnWrite(fmt.Sprintf("writer %d id %d: count %d at %s", w.n, id, n, time.Now().UTC().Format("15:04:05.000")))
	}
	return nil
}

// reader runs reads the split may send to the replica, three ways in turn:
// extended protocol, simple protocol, and a READ ONLY transaction.
type reader struct {
	client
	writers int
}

func (r *reader) run(ctx context.Context) {
	defer r.drop()
	for i := 0; ctx.Err() == nil; i++ {
		if r.conn == nil && !r.connect(ctx) {
			return
		}
		if err := r.read(ctx, i%3, 1+rand.IntN(r.writers)); err != nil {
			if ctx.Err() != nil {
				err = fmt.Errorf("%w: %w", errLoadEnded, err)
			} else {
				r.c.readErrs.Add(1)
			}
			r.c.countErr("read", err)
			r.drop()
		} else {
			r.c.reads.Add(1)
		}
		pause(ctx, r.think)
	}
}

func (r *reader) read(ctx context.Context, kind, w int) error {
	octx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	const recent = "SELECT id FROM ledger WHERE writer = $1 ORDER BY id DESC LIMIT 10"
	switch kind {
	case 0:
		rows, _ := r.conn.Query(octx, recent, w)
		_, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		return err
	case 1:
		var max *int64
		return r.conn.QueryRow(octx, "SELECT max(id) FROM ledger WHERE writer = $1", pgx.QueryExecModeSimpleProtocol, w).Scan(&max)
	}
	tx, err := r.conn.BeginTx(octx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return err
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = tx.Rollback(rctx) // a no-op after Commit
		cancel()
	}()
	var n int64
	if err := tx.QueryRow(octx, "SELECT count(*) FROM ledger WHERE writer = $1 AND id > $2", w, int64(w)<<40).Scan(&n); err != nil {
		return err
	}
	rows, _ := tx.Query(octx, recent, w)
	if _, err := pgx.CollectRows(rows, pgx.RowTo[int64]); err != nil {
		return err
	}
	return tx.Commit(octx)
}
