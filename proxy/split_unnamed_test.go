package proxy_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestSplitPgxDescribeExecIsolation: pgx's describe_exec mode through the
// split, several clients at once, each changing its unnamed statement's
// shape (parameters and columns) every query. pgx parses and describes
// the unnamed statement in one request (nothing runs: the primary) and
// binds it in the next (a read: the replica), so each query's unnamed
// statement is parsed on one server and run on another. A server that
// still holds the client's previous unnamed statement must not run it in
// place of the current one: every client gets exactly its own rows, with
// no error.
func TestSplitPgxDescribeExecIsolation(t *testing.T) {
	t.Parallel()
	const db = "splitunnamed"
	replicaDatabase(t, cluster, db)
	p := splitProxy(t, cluster, db, nil)
	waitForReplicaReads(t, connect(t, p.DSN(appUser, appPassword, db)), cluster)
	const clients, iterations = 4, 30
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := 0; c < clients; c++ {
		conn := connectMode(t, p.DSN(appUser, appPassword, db), pgx.QueryExecModeDescribeExec)
		wg.Add(1)
		go func(c int, conn *pgx.Conn) {
			defer wg.Done()
			errs <- describeExecQueries(t, conn, c, iterations)
		}(c, conn)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// describeExecQueries runs client c's queries: at iteration it, a
// statement of c+1+it%3 parameters and as many columns, column j being
// it+j+1000*c. It returns the first error or wrong row.
func describeExecQueries(t *testing.T, conn *pgx.Conn, c, iterations int) error {
	ctx := testCtx(t)
	for it := 0; it < iterations; it++ {
		n := c + 1 + it%3
		cols := make([]string, n)
		args := make([]any, n)
		want := make([]string, n)
		for j := range cols {
			cols[j] = fmt.Sprintf("$%d::int + %d", j+1, 1000*c)
			args[j] = it + j
			want[j] = fmt.Sprint(it + j + 1000*c)
		}
		rows, err := conn.Query(ctx, "SELECT "+strings.Join(cols, ", "), args...)
		if err != nil {
			return fmt.Errorf("client %d iteration %d: %w", c, it, err)
		}
		vals, err := pgx.CollectExactlyOneRow(rows, func(r pgx.CollectableRow) ([]any, error) { return r.Values() })
		if err != nil {
			return fmt.Errorf("client %d iteration %d: %w", c, it, err)
		}
		if got := fmt.Sprint(vals...); len(vals) != n || got != strings.Join(want, " ") {
			return fmt.Errorf("client %d iteration %d: got %v, want %v: another statement ran", c, it, vals, want)
		}
	}
	return nil
}
