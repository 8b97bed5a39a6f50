//go:build linux

package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgone/pgone/internal/pgtest"
)

// TestTxpoolLendsServersPerTransaction: sixteen real clients over a pool
// of two server connections, with the simple and the extended protocol,
// each get their own answers; a transaction keeps one server from BEGIN
// to COMMIT; the clients share only the pool's two backends; and after
// they all leave (Terminate) the pool still serves a new client, also
// once every server connection it had was terminated.
func TestTxpoolLendsServersPerTransaction(t *testing.T) {
	cl := pgtest.New(t, pgtest.Options{})
	addr := freeAddr(t)
	tp, err := newTxpool(addr, cl.Primary.DSN(pgtest.SuperUser, pgtest.SuperPassword, "postgres"), 2)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = tp.run() }()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dsn := "postgres://anyone:x@" + addr + "/postgres?sslmode=disable"
	var mu sync.Mutex
	pids := map[string]bool{}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for id := 0; id < 16; id++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- txpoolClient(ctx, dsn, id, func(pid string) {
				mu.Lock()
				pids[pid] = true
				mu.Unlock()
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(pids) == 0 || len(pids) > 2 {
		t.Fatalf("the clients were served by %d backends, want 1 or 2 (the pool): %v", len(pids), pids)
	}
	if err := txpoolClient(ctx, dsn, 99, func(string) {}); err != nil {
		t.Fatalf("after every client left: %v", err)
	}

	su, err := pgconn.Connect(ctx, cl.Primary.DSN(pgtest.SuperUser, pgtest.SuperPassword, "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer su.Close(ctx)
	const others = "from pg_stat_activity where backend_type = 'client backend' and pid <> pg_backend_pid()"
	if _, err := su.Exec(ctx, "select pg_terminate_backend(pid) "+others).ReadAll(); err != nil {
		t.Fatal(err)
	}
	for left := "1"; left != "0"; time.Sleep(50 * time.Millisecond) {
		res, err := su.Exec(ctx, "select count(*) "+others).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		left = string(res[0].Rows[0][0])
	}
	time.Sleep(100 * time.Millisecond) // the loop reads each server's end
	if err := txpoolClient(ctx, dsn, 100, func(string) {}); err != nil {
		t.Fatalf("after its server connections were terminated: %v", err)
	}
}

// txpoolClient runs 50 rounds of a simple query, an extended one and a
// transaction, checking every answer is its own.
func txpoolClient(ctx context.Context, dsn string, id int, saw func(pid string)) error {
	pc, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer pc.Close(ctx)
	want := strconv.Itoa(id)
	one := func(rr *pgconn.ResultReader) ([][]byte, error) {
		res := rr.Read()
		if res.Err != nil {
			return nil, res.Err
		}
		if len(res.Rows) != 1 {
			return nil, fmt.Errorf("client %d: %d rows, want 1", id, len(res.Rows))
		}
		return res.Rows[0], nil
	}
	for round := 0; round < 50; round++ {
		res, err := pc.Exec(ctx, "select "+want+", pg_backend_pid()").ReadAll()
		if err != nil {
			return err
		}
		if got := string(res[0].Rows[0][0]); got != want {
			return fmt.Errorf("client %d got %s from its simple query", id, got)
		}
		saw(string(res[0].Rows[0][1]))
		row, err := one(pc.ExecParams(ctx, "select $1::int, pg_backend_pid()", [][]byte{[]byte(want)}, nil, nil, nil))
		if err != nil {
			return err
		}
		if string(row[0]) != want {
			return fmt.Errorf("client %d got %s from its extended query", id, row[0])
		}
		res, err = pc.Exec(ctx, "begin; select pg_backend_pid()").ReadAll()
		if err != nil {
			return err
		}
		first := string(res[1].Rows[0][0])
		time.Sleep(time.Millisecond) // others come and want a server meanwhile
		res, err = pc.Exec(ctx, "select pg_backend_pid(); commit").ReadAll()
		if err != nil {
			return err
		}
		if again := string(res[0].Rows[0][0]); again != first {
			return fmt.Errorf("client %d: its transaction moved from backend %s to %s", id, first, again)
		}
	}
	return nil
}
