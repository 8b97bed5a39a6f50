package proxy_test

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/pool"
)

var (
	pgbenchProcessed = regexp.MustCompile(`(?m)^number of transactions actually processed: (\d+)`)
	pgbenchFailed    = regexp.MustCompile(`(?m)^number of failed transactions: (\d+)`)
)

// runPgbench runs pgbench as app against db through p and returns its
// combined output; it fails the test unless pgbench exits 0.
func runPgbench(t *testing.T, p *testProxy, db string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args = append([]string{"-h", p.Host, "-p", strconv.Itoa(p.Port), "-U", appUser}, append(args, db)...)
	cmd := exec.CommandContext(ctx, "pgbench", args...)
	cmd.Env = libpqEnv("PGPASSWORD=" + appPassword)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("pgbench %q: %v\n%s", args, err, out.String())
	}
	return out.String()
}

func TestPgbenchThroughPgone(t *testing.T) {
	t.Parallel()
	const db, clients = "clbench", 8
	modes := []string{"simple", "extended", "prepared"}
	ctx := testCtx(t)
	began := time.Now()
	for _, sql := range []string{
		fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", db),
		fmt.Sprintf("CREATE DATABASE %s OWNER %s", db, appUser),
	} {
		if err := cluster.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("database created in %s", time.Since(began))
	// Registered before startProxy, so it runs after pgone has stopped.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = cluster.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", db))
	})
	// The modes may run at once, each client on its own server connection.
	p := startProxy(t, func(c *config.Config) {
		c.Pool.Mode = pool.ModeSession
		c.Pool.PoolSize = clients*len(modes) + 2
	})

	began = time.Now()
	out := runPgbench(t, p, db, "-i", "-s", "1", "-q")
	t.Logf("pgbench -i took %s", time.Since(began))
	if !regexp.MustCompile(`(?m)^done in `).MatchString(out) {
		t.Fatalf("pgbench -i did not finish:\n%s", out)
	}

	warmPool(t, p, db, clients*len(modes))

	processed := make(chan int, len(modes))
	t.Run("run", func(t *testing.T) {
		for _, mode := range modes {
			t.Run(mode, func(t *testing.T) {
				t.Parallel()
				// -n: no vacuum, which would also truncate pgbench_history.
				out := runPgbench(t, p, db, "-n", "-M", mode, "-T", "3", "-c", strconv.Itoa(clients), "-j", "2")
				pm, fm := pgbenchProcessed.FindStringSubmatch(out), pgbenchFailed.FindStringSubmatch(out)
				if pm == nil || fm == nil {
					t.Fatalf("pgbench output lacks its summary:\n%s", out)
				}
				n, _ := strconv.Atoi(pm[1])
				if n <= 0 || fm[1] != "0" {
					t.Fatalf("processed %s, failed %s:\n%s", pm[1], fm[1], out)
				}
				processed <- n
			})
		}
	})
	close(processed)
	total := 0
	for n := range processed {
		total += n
	}
	if t.Failed() {
		return
	}

	// Every committed TPC-B transaction left one history row and moved the
	// same delta on an account, a teller and a branch: check on the primary.
	conn := connect(t, cluster.Primary.DSN(appUser, appPassword, db))
	var history, deltas, accounts, tellers, branches int64
	err := conn.QueryRow(testCtx(t), `SELECT (SELECT count(*) FROM pgbench_history), (SELECT coalesce(sum(delta), 0) FROM pgbench_history),
		(SELECT sum(abalance) FROM pgbench_accounts), (SELECT sum(tbalance) FROM pgbench_tellers),
		(SELECT sum(bbalance) FROM pgbench_branches)`).Scan(&history, &deltas, &accounts, &tellers, &branches)
	if err != nil {
		t.Fatal(err)
	}
	if history != int64(total) {
		t.Errorf("pgbench_history has %d rows; pgbench reported %d processed transactions", history, total)
	}
	if accounts != deltas || tellers != deltas || branches != deltas {
		t.Errorf("balances disagree: history %d, accounts %d, tellers %d, branches %d", deltas, accounts, tellers, branches)
	}
}

// warmPool opens n server connections for app on db and leaves them idle
// in pgone's pool. pgbench counts its connection time into -T, and dialing
// PostgreSQL (SCRAM in Go) is slow under -race on a small machine.
func warmPool(t *testing.T, p *testProxy, db string, n int) {
	t.Helper()
	type dialed struct {
		conn *pgx.Conn
		err  error
	}
	ch := make(chan dialed, n)
	for range n {
		go func() {
			c, err := pgx.Connect(testCtx(t), p.DSN(appUser, appPassword, db))
			ch <- dialed{c, err}
		}()
	}
	// All are open at once, so each has its own server connection.
	var errs []error
	var conns []*pgx.Conn
	for range n {
		d := <-ch
		if d.err != nil {
			errs = append(errs, d.err)
			continue
		}
		conns = append(conns, d.conn)
	}
	for _, c := range conns {
		c.Close(context.Background())
	}
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	// Closing is asynchronous: pgone resets each server before pooling it.
	key := pool.Key{Database: db, User: appUser}
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, st := range p.Pools.Stats() {
			if st.Key == key && st.Idle >= n {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pool stats %+v: fewer than %d idle connections", p.Pools.Stats(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
