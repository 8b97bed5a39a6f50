package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The fault matrix (TestFault*, `make faults`) drives writers through pgone
// while a fault happens, then reads the table straight from the primary and
// checks what pgone told each client against what is committed.

// Client-visible codes the fault tests name.
const (
	codeServerLost     = "08006" // pgone: server lost, nothing committed
	codeOutcomeUnknown = "08007" // pgone: a commit or write was in flight
	codeAdminShutdown  = "57P01" // pgone shutting down, or PostgreSQL's terminate
	codeTooMany        = "53300" // pgone: no server within query_wait_timeout
	codeCanceled       = "57014" // query_timeout
	codeUniqueViolated = "23505" // an id written twice
	// codeNoSQLSTATE stands for an error that carries no ErrorResponse:
	// the client's connection ended or could not be opened.
	codeNoSQLSTATE = "closed"
)

// ledgerTable is created by createLedger on the database under test.
const ledgerTable = "fault_ledger"

// createLedger creates the ledger table through a direct connection. The
// primary key makes a write applied twice a unique violation.
func createLedger(t *testing.T, directDSN string) {
	t.Helper()
	conn := connect(t, directDSN)
	if _, err := conn.Exec(testCtx(t), "CREATE TABLE "+ledgerTable+" (id bigint PRIMARY KEY, client int NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	conn.Close(context.Background())
}

// ledger records, for every id a writer tried, whether pgone acknowledged
// it or which SQLSTATE it answered. Ids are unique across writers and never
// retried, so the table must hold each acknowledged id exactly once.
type ledger struct {
	dsn    string
	nextID atomic.Int64
	stop   chan struct{}
	wg     sync.WaitGroup
	acks   []atomic.Int64 // per writer
	conns  []*pgx.Conn    // logged in, not yet writing

	mu     sync.Mutex
	acked  map[int64]bool
	failed map[int64]string // id -> code of the error that ended its write
	codes  map[string]int
	steps  map[string]map[string]int // code -> step -> count
	first  map[string]string         // code -> first error text, for the log
}

// startLedger starts writers clients writing through dsn; each logs in
// before it returns. Writers alternate an autocommit INSERT and an explicit
// transaction of two INSERTs. stopWriters (also registered as cleanup)
// ends them.
func startLedger(t *testing.T, dsn string, writers int) *ledger {
	t.Helper()
	l := startLedgerStopped(t, dsn, writers)
	l.start()
	return l
}

// startLedgerStopped logs the writers in; start sets them writing.
func startLedgerStopped(t *testing.T, dsn string, writers int) *ledger {
	t.Helper()
	l := &ledger{dsn: dsn, stop: make(chan struct{}), acks: make([]atomic.Int64, writers),
		acked: map[int64]bool{}, failed: map[int64]string{}, codes: map[string]int{}, steps: map[string]map[string]int{}, first: map[string]string{}}
	for i := 0; i < writers; i++ {
		l.conns = append(l.conns, connect(t, dsn))
	}
	t.Cleanup(l.stopWriters)
	return l
}

// start sets the logged-in writers writing.
func (l *ledger) start() {
	for i, conn := range l.conns {
		l.wg.Add(1)
		go l.write(i, conn)
	}
	l.conns = nil
}

// ackTotal is the number of acknowledged writes so far.
func (l *ledger) ackTotal() int64 {
	var n int64
	for i := range l.acks {
		n += l.acks[i].Load()
	}
	return n
}

// stopWriters ends the writers and waits for them; safe to call twice.
func (l *ledger) stopWriters() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

func (l *ledger) stopped() bool {
	select {
	case <-l.stop:
		return true
	default:
		return false
	}
}

// write is one writer's loop. A connection pgone ended is replaced, so
// what happens after the fault is still measured.
func (l *ledger) write(client int, conn *pgx.Conn) {
	defer l.wg.Done()
	for op := 0; !l.stopped(); op++ {
		if conn == nil || conn.IsClosed() {
			if conn = l.reconnect(); conn == nil {
				continue
			}
		}
		n := 1 + op%2
		ids := make([]int64, n)
		for i := range ids {
			ids[i] = l.nextID.Add(1)
		}
		err := writeIDs(conn, client, ids)
		l.record(client, ids, err)
	}
	if conn != nil {
		conn.Close(context.Background())
	}
}

// reconnect opens a new connection, or returns nil after a failed try
// (counted) so the loop can look at stop again.
func (l *ledger) reconnect() *pgx.Conn {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, l.dsn)
	if err != nil {
		l.record(-1, nil, stepErr(stepConnect, err))
		select {
		case <-l.stop:
		case <-time.After(20 * time.Millisecond): // retry pace, not synchronisation
		}
		return nil
	}
	return conn
}

// writeIDs inserts ids: one alone in autocommit, two in BEGIN ... COMMIT.
func writeIDs(conn *pgx.Conn, client int, ids []int64) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const insert = "INSERT INTO " + ledgerTable + " (id, client) VALUES ($1, $2)"
	if len(ids) == 1 {
		_, err := conn.Exec(ctx, insert, ids[0], client)
		return stepErr(stepAutocommit, err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return stepErr(stepBegin, err)
	}
	for i, id := range ids {
		if _, err := tx.Exec(ctx, insert, id, client); err != nil {
			_ = tx.Rollback(ctx)
			return stepErr(fmt.Sprintf("INSERT %d of the transaction", i+1), err)
		}
	}
	return stepErr(stepCommit, tx.Commit(ctx))
}

// Steps of a write, as recorded with each error.
const (
	stepConnect    = "connect"
	stepAutocommit = "autocommit INSERT"
	stepBegin      = "BEGIN"
	stepCommit     = "COMMIT"
)

// stepError is an error with the step of the write it ended.
type stepError struct {
	step string
	err  error
}

func (e *stepError) Error() string { return e.step + ": " + e.err.Error() }
func (e *stepError) Unwrap() error { return e.err }

// stepErr names the step an error ended.
func stepErr(step string, err error) error {
	if err == nil {
		return nil
	}
	return &stepError{step: step, err: err}
}

// stepOf is the step an error ended, or "".
func stepOf(err error) string {
	var se *stepError
	if errors.As(err, &se) {
		return se.step
	}
	return ""
}

// codeOf is the SQLSTATE a client saw, or codeNoSQLSTATE.
func codeOf(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return codeNoSQLSTATE
}

func (l *ledger) record(client int, ids []int64, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil {
		for _, id := range ids {
			l.acked[id] = true
		}
		l.acks[client].Add(1)
		return
	}
	code := codeOf(err)
	l.codes[code]++
	if l.steps[code] == nil {
		l.steps[code] = map[string]int{}
	}
	l.steps[code][stepOf(err)]++
	if _, ok := l.first[code]; !ok {
		l.first[code] = err.Error()
	}
	for _, id := range ids {
		l.failed[id] = code
	}
}

// waitServed waits until every writer has had a write acknowledged after
// the call: pgone serves again, and no writer is stuck.
func (l *ledger) waitServed(t *testing.T, what string) {
	t.Helper()
	if err := l.served(what); err != nil {
		t.Fatal(err)
	}
}

// served is waitServed returning its failure.
func (l *ledger) served(what string) error {
	base := make([]int64, len(l.acks))
	for i := range l.acks {
		base[i] = l.acks[i].Load()
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		behind := 0
		for i := range l.acks {
			if l.acks[i].Load() <= base[i] {
				behind++
			}
		}
		if behind == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %d of %d writers had no write acknowledged within 30s (errors so far: %s)", what, behind, len(l.acks), l.summary())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// summary lists the error codes seen, with the first text of each.
func (l *ledger) summary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var parts []string
	for code, n := range l.codes {
		parts = append(parts, fmt.Sprintf("%s x%d (%s)", code, n, l.first[code]))
	}
	sort.Strings(parts)
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "; ")
}

// stepsOtherThan lists the steps other than steps at which an error with
// code ended a write, with counts, or "" if there are none.
func (l *ledger) stepsOtherThan(code string, steps ...string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	ok := map[string]bool{}
	for _, s := range steps {
		ok[s] = true
	}
	var bad []string
	for step, n := range l.steps[code] {
		if !ok[step] {
			bad = append(bad, fmt.Sprintf("%q x%d", step, n))
		}
	}
	sort.Strings(bad)
	return strings.Join(bad, ", ")
}

// verdict is what verify found, for checks a test may gate.
type verdict struct {
	// lostButCommitted are ids answered 08006 ("rolled back") that the
	// primary has: an in-doubt commit reported as rolled back.
	lostButCommitted []int64
}

// verify stops the writers and checks the table on the primary (read
// through directDSN) against the ledger: every acknowledged id is there,
// no writer saw a unique violation (a write applied twice), every error
// code is one of allowed, and no id answered 08006 is there (returned in
// the verdict, since on main that is a known bug). It fails the test if
// nothing was acknowledged at all.
func (l *ledger) verify(t *testing.T, directDSN string, allowed ...string) verdict {
	t.Helper()
	l.stopWriters()
	conn := connect(t, directDSN)
	rows, err := conn.Query(testCtx(t), "SELECT id, count(*) OVER (PARTITION BY id) FROM "+ledgerTable)
	if err != nil {
		t.Fatal(err)
	}
	present := map[int64]int64{}
	for rows.Next() {
		var id, n int64
		if err := rows.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		present[id] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	summary := l.summary()
	l.mu.Lock()
	defer l.mu.Unlock()
	t.Logf("ledger: %d ids acknowledged, %d failed, %d rows on the primary; errors: %s",
		len(l.acked), len(l.failed), len(present), summary)
	if len(l.acked) == 0 {
		t.Fatal("no write was acknowledged")
	}
	var missing []int64
	for id := range l.acked {
		if present[id] == 0 {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d acknowledged writes are not on the primary, e.g. id %d", len(missing), missing[0])
	}
	for id, n := range present {
		if n > 1 {
			t.Errorf("id %d is on the primary %d times", id, n)
		}
		if _, tried := l.acked[id]; !tried {
			if _, failed := l.failed[id]; !failed {
				t.Errorf("id %d is on the primary but no writer's outcome for it was recorded", id)
			}
		}
	}
	if n := l.codes[codeUniqueViolated]; n > 0 {
		t.Errorf("%d writes hit a unique violation: a write was applied twice (%s)", n, l.first[codeUniqueViolated])
	}
	ok := map[string]bool{}
	for _, c := range allowed {
		ok[c] = true
	}
	for code, n := range l.codes {
		if !ok[code] && code != codeUniqueViolated {
			t.Errorf("writers saw %s %d times (first: %s); allowed here: %v", code, n, l.first[code], allowed)
		}
	}
	var v verdict
	for id, code := range l.failed {
		if (code == codeServerLost || code == codeAdminShutdown) && present[id] > 0 {
			v.lostButCommitted = append(v.lostButCommitted, id)
		}
	}
	return v
}

// requireNoRollbackClaimForCommitted fails (or, before fix/commit, skips)
// when a client was told 08006 "rolled back" for a write that committed.
func (v verdict) requireNoRollbackClaimForCommitted(t *testing.T) {
	t.Helper()
	if len(v.lostButCommitted) == 0 {
		return
	}
	msg := fmt.Sprintf("%d writes answered 08006 (rolled back) are committed on the primary, e.g. id %d; want 08007",
		len(v.lostButCommitted), v.lostButCommitted[0])
	t.Error(msg)
}
