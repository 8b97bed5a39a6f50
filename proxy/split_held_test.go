package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// heldReplyTimeout bounds waits for replies that must come at once: long
// enough for a loaded machine, far shorter than the hang it catches.
const heldReplyTimeout = 10 * time.Second

// extended is Parse, Bind and Execute of sql with the unnamed statement and
// portal: what a client sends for one query before its Flush or Sync.
func extended(sql string) []pgproto3.FrontendMessage {
	return []pgproto3.FrontendMessage{&pgproto3.Parse{Query: sql}, &pgproto3.Bind{}, &pgproto3.Execute{}}
}

// receiveTypes reads replies within heldReplyTimeout until stop accepts
// one and returns their types; a timeout fails the test with what came.
func receiveTypes(t *testing.T, c *msgConn, what string, stop func(pgproto3.BackendMessage) bool) (types []string, rows [][]string) {
	t.Helper()
	for {
		m, err := c.receive(heldReplyTimeout)
		if err != nil {
			t.Fatalf("%s: no reply after %q: %v", what, types, err)
		}
		types = append(types, strings.TrimPrefix(reflectName(m), "*pgproto3."))
		if dr, ok := m.(*pgproto3.DataRow); ok {
			var row []string
			for _, v := range dr.Values {
				row = append(row, string(v))
			}
			rows = append(rows, row)
		}
		if stop(m) {
			return types, rows
		}
	}
}

func reflectName(m pgproto3.BackendMessage) string {
	s := recordMsg(m)
	name, _, _ := strings.Cut(s, " ")
	return name
}

func isError(m pgproto3.BackendMessage) bool {
	_, ok := m.(*pgproto3.ErrorResponse)
	return ok
}

// TestSplitSyncAfterFlushedReplicaPipeline: a client's extended-protocol
// pipeline runs on the replica and is flushed, not synced; an error in it
// makes the replica skip to the Sync. The client's next request, the lone
// Sync, carries no statement: it must reach the replica that waits for it
// (not wait for the replica's replies, which need that Sync, to route it to
// the primary). The repro: select 1/0 + Flush, select 3 + Flush,
// Sync.
func TestSplitSyncAfterFlushedReplicaPipeline(t *testing.T) {
	t.Parallel()
	const db = "splitheld"
	p, _ := readySplit(t, db, nil)
	c := connectMsg(t, p.DSN(appUser, appPassword, db))
	replica := strconv.Itoa(cluster.Replica.Port)

	c.send(append(extended(portQuery), &pgproto3.Flush{})...)
	_, rows := receiveTypes(t, c, "read + Flush", func(m pgproto3.BackendMessage) bool {
		_, ok := m.(*pgproto3.CommandComplete)
		return ok
	})
	if len(rows) != 1 || rows[0][0] != replica {
		t.Fatalf("the pipeline's first read ran on %v, want the replica %s: the test needs it there", rows, replica)
	}
	c.send(append(extended("select 1/0"), &pgproto3.Flush{})...)
	got, _ := receiveTypes(t, c, "select 1/0 + Flush", isError)
	if want := "ParseComplete ErrorResponse"; strings.Join(got, " ") != want {
		t.Errorf("select 1/0 + Flush: %q, want %q", got, want)
	}
	c.send(append(extended("select 3"), &pgproto3.Flush{})...) // skipped by the server: no reply
	c.send(&pgproto3.Sync{})
	got, _ = receiveTypes(t, c, "the lone Sync", isRFQ)
	if want := "ReadyForQuery"; strings.Join(got, " ") != want {
		t.Errorf("lone Sync after the failed pipeline: %q, want %q (the skipped select 3 answers nothing)", got, want)
	}
	// The session goes on: a write runs on the primary.
	c.send(append(extended("select inet_server_port() from (select txid_current()) x"), &pgproto3.Sync{})...)
	_, rows = receiveTypes(t, c, "a write after the Sync", isRFQ)
	if len(rows) != 1 || rows[0][0] != strconv.Itoa(cluster.Primary.Port) {
		t.Errorf("write after the Sync ran on %v, want the primary %d", rows, cluster.Primary.Port)
	}
}

// TestSplitExecuteSyncContinuesReplicaPipeline: Parse+Bind+Flush of a read
// (on the replica), then Execute+Sync: the second request has no statement
// text and continues the portal the first created; it runs on the replica
// and returns the row.
func TestSplitExecuteSyncContinuesReplicaPipeline(t *testing.T) {
	t.Parallel()
	const db = "splitexec"
	p, _ := readySplit(t, db, nil)
	c := connectMsg(t, p.DSN(appUser, appPassword, db))
	c.send(&pgproto3.Parse{Query: portQuery}, &pgproto3.Bind{}, &pgproto3.Flush{})
	got, _ := receiveTypes(t, c, "Parse+Bind+Flush", func(m pgproto3.BackendMessage) bool {
		_, ok := m.(*pgproto3.BindComplete)
		return ok
	})
	if want := "ParseComplete BindComplete"; strings.Join(got, " ") != want {
		t.Fatalf("Parse+Bind+Flush: %q, want %q", got, want)
	}
	c.send(&pgproto3.Execute{}, &pgproto3.Sync{})
	got, rows := receiveTypes(t, c, "Execute+Sync", isRFQ)
	if want := "DataRow CommandComplete ReadyForQuery"; strings.Join(got, " ") != want {
		t.Errorf("Execute+Sync: %q, want %q", got, want)
	}
	if len(rows) != 1 || rows[0][0] != strconv.Itoa(cluster.Replica.Port) {
		t.Errorf("the portal ran on %v, want the replica %d", rows, cluster.Replica.Port)
	}
}

// TestSplitClientLeavesWhileRequestHeld: clients that disconnect while
// their request is held behind replica replies leave no trace: one sends
// the deadlocking pipeline (select 1/0 + Flush, select 3 + Flush, Sync) and
// leaves; another pipelines a slow read (replica) and a write (which waits
// for the read's reply to move to the primary) and leaves. Both disappear
// from SHOW CLIENTS and no server stays active.
func TestSplitClientLeavesWhileRequestHeld(t *testing.T) {
	t.Parallel()
	const db = "splitleave"
	replicaDatabase(t, cluster, db)
	p := splitProxy(t, cluster, db, nil)
	setup := connect(t, p.DSN(appUser, appPassword, db))
	if _, err := setup.Exec(testCtx(t), "CREATE TABLE leave (v int)"); err != nil {
		t.Fatal(err)
	}
	if err := cluster.WaitReplicaCaughtUp(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	reader := connect(t, p.DSN(appUser, appPassword, db))
	waitForReplicaReads(t, reader, cluster)
	admin := p.console(t, adminUser, adminPassword)
	before := show(t, admin, "SHOW CLIENTS").count("database", db)

	stuck := connectMsg(t, p.DSN(appUser, appPassword, db))
	stuck.send(append(extended(portQuery), &pgproto3.Flush{})...)
	receiveTypes(t, stuck, "read + Flush", func(m pgproto3.BackendMessage) bool {
		_, ok := m.(*pgproto3.CommandComplete)
		return ok
	})
	stuck.send(append(extended("select 1/0"), &pgproto3.Flush{})...)
	receiveTypes(t, stuck, "select 1/0 + Flush", isError)
	stuck.send(append(extended("select 3"), &pgproto3.Flush{})...)
	stuck.send(&pgproto3.Sync{})

	slow := connectMsg(t, p.DSN(appUser, appPassword, db))
	slow.send(&pgproto3.Query{String: "select pg_sleep(0.3)"}, &pgproto3.Query{String: "insert into leave values (1)"})

	// A client shows once it has had a server (transaction mode logs in
	// without one).
	eventually(t, "both clients in SHOW CLIENTS", func() bool {
		return show(t, admin, "SHOW CLIENTS").count("database", db) == before+2
	})
	_ = stuck.nc.Close()
	_ = slow.nc.Close()
	eventually(t, "the clients that left gone from SHOW CLIENTS", func() bool {
		return show(t, admin, "SHOW CLIENTS").count("database", db) == before
	})
	eventually(t, "no active server left", func() bool {
		return show(t, admin, "SHOW SERVERS").count("database", db, "state", "active") == 0
	})
	// The pgx view: the pool serves the remaining client on both servers.
	ctx, cancel := context.WithTimeout(context.Background(), heldReplyTimeout)
	defer cancel()
	if got := serverPort(t, ctx, reader, portQuery, pgx.QueryExecModeSimpleProtocol); got != cluster.Replica.Port {
		t.Errorf("a read after the others left ran on %d, want the replica %d", got, cluster.Replica.Port)
	}
}

// TestSplitPgxLargeReadAndPipelineError: the pgx cases of the issue
// through the split. A read whose parameters pass 1 MiB reaches pgone in
// two parts, the second (Describe, Execute, Sync) without statement text:
// both run on the replica. A pgx pipeline whose first query fails and is
// flushed before the next (TestPipelineFlushWithError) gets its error and
// then the next query's result.
func TestSplitPgxLargeReadAndPipelineError(t *testing.T) {
	t.Parallel()
	const db = "splitlarge"
	_, conn := readySplit(t, db, nil)
	ctx, cancel := context.WithTimeout(context.Background(), heldReplyTimeout)
	defer cancel()

	big := strings.Repeat("x", 2<<20)
	var n, port int
	if err := conn.QueryRow(ctx, "select length($1::text), inet_server_port()", big).Scan(&n, &port); err != nil {
		t.Fatalf("read with a 2 MiB parameter: %v", err)
	}
	if n != len(big) || port != cluster.Replica.Port {
		t.Errorf("read with a 2 MiB parameter: length %d on port %d, want %d on the replica %d", n, port, len(big), cluster.Replica.Port)
	}

	// pgx's TestPipelineFlushWithError, step by step.
	pl := conn.PgConn().StartPipeline(ctx)
	defer pl.Close()
	step := func(what string, want string) {
		t.Helper()
		res, err := pl.GetResults()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		got := "nil"
		switch r := res.(type) {
		case *pgconn.ResultReader:
			rd := r.Read()
			switch {
			case rd.Err != nil:
				var pe *pgconn.PgError
				if errors.As(rd.Err, &pe) {
					got = "error " + pe.Code
				} else {
					got = "error " + rd.Err.Error()
				}
			case len(rd.Rows) == 1:
				got = "row " + string(rd.Rows[0][0])
			default:
				got = fmt.Sprintf("%d rows", len(rd.Rows))
			}
		case *pgconn.PipelineSync:
			got = "sync"
		case nil:
		default:
			got = fmt.Sprintf("%T", res)
		}
		if got != want {
			t.Fatalf("%s: got %s, want %s", what, got, want)
		}
	}
	pl.SendQueryParams("select 1", nil, nil, nil, nil)
	pl.SendQueryParams("select 1/(3-n) from generate_series(1,10) n", nil, nil, nil, nil)
	pl.SendQueryParams("select 2", nil, nil, nil, nil)
	pl.SendFlushRequest()
	if err := pl.Flush(); err != nil {
		t.Fatal(err)
	}
	step("select 1", "row 1")
	step("division by zero", "error 22012")
	step("skipped select 2", "nil")
	pl.SendQueryParams("select 3", nil, nil, nil, nil)
	pl.SendFlushRequest()
	if err := pl.Flush(); err != nil {
		t.Fatal(err)
	}
	step("skipped select 3", "nil")
	pl.SendQueryParams("select 4", nil, nil, nil, nil)
	pl.SendPipelineSync()
	pl.SendQueryParams("select 5", nil, nil, nil, nil)
	pl.SendFlushRequest()
	if err := pl.Flush(); err != nil {
		t.Fatal(err)
	}
	step("sync after the error", "sync")
	step("select 5", "row 5")
	step("after select 5", "nil")
	if err := pl.Sync(); err != nil {
		t.Fatal(err)
	}
	step("last sync", "sync")
}

// TestSplitPgxHugeRequests: pgx's TestConnExecParamsMaxNumberOfParams
// (65,535 parameters: a request over 1 MiB) and TestConnExecBatchHuge (a
// batch of reads over 1 MiB, sent in parts) through the split.
func TestSplitPgxHugeRequests(t *testing.T) {
	t.Parallel()
	const db = "splithuge"
	_, conn := readySplit(t, db, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	const paramCount = 65535
	params := make([]string, 0, paramCount)
	args := make([][]byte, 0, paramCount)
	for i := range paramCount {
		params = append(params, fmt.Sprintf("($%d::text)", i+1))
		args = append(args, []byte(strconv.Itoa(i)))
	}
	res := conn.PgConn().ExecParams(ctx, "values"+strings.Join(params, ", "), args, nil, nil, nil).Read()
	if res.Err != nil || len(res.Rows) != paramCount {
		t.Fatalf("values with %d parameters: %d rows, %v", paramCount, len(res.Rows), res.Err)
	}

	const queries = 15_000 // about 1.5 MB of messages
	batch := &pgconn.Batch{}
	for i := range queries {
		batch.ExecParams("select $1::text, inet_server_port()", [][]byte{[]byte(strconv.Itoa(i))}, nil, nil, nil)
	}
	results, err := conn.PgConn().ExecBatch(ctx, batch).ReadAll()
	if err != nil || len(results) != queries {
		t.Fatalf("batch of %d reads: %d results, %v", queries, len(results), err)
	}
	for i, r := range results {
		if len(r.Rows) != 1 || string(r.Rows[0][0]) != strconv.Itoa(i) {
			t.Fatalf("batch result %d: %q", i, r.Rows)
		}
	}
	if port := string(results[queries-1].Rows[0][1]); port != strconv.Itoa(cluster.Replica.Port) {
		t.Errorf("the batch's last read ran on %s, want the replica %d", port, cluster.Replica.Port)
	}
}
