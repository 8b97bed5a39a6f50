package proxy_test

import (
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/proxy"
)

// TestTxModePlanRoutesOncePerStatement: in transaction mode each statement
// of a request is routed once (the request's plan), though split routing,
// rendering (session effects) and the outcome of a lost server all read
// its decision: a simple Query, an extended Parse/Bind/Execute of the
// unnamed and of a named statement, each in one request, on a database
// whose reads are split to a replica. The texts are reads the lexical fast
// paths cannot clear (a function call; the word "temp"), so every stage
// needs the router's decision.
func TestTxModePlanRoutesOncePerStatement(t *testing.T) {
	t.Parallel()
	const db = "planonce"
	replicaDatabase(t, cluster, db)
	var counter *proxy.RouteCounter
	p := startObservedProxy(t, func(c *config.Config) {
		c.Pool.Mode = pool.ModeTransaction
		c.Pool.PoolSize = 4
		c.Proxy.Databases[db] = proxy.Database{
			Host: cluster.Primary.Host, Port: cluster.Primary.Port, User: appUser, Password: appPassword,
			Replicas: []proxy.Replica{{Host: cluster.Replica.Host, Port: cluster.Replica.Port}},
		}
		c.Proxy.Routing.ReadFunctions = []string{"inet_server_port"}
	}, func(s *proxy.Server) { counter = s.CountRouting() })
	ctx := testCtx(t)
	conn := connect(t, p.DSN(appUser, appPassword, db))
	waitForReplicaReads(t, conn, cluster)
	pc := conn.PgConn()

	simple := "SELECT inet_server_port(), 'temp simple'::text"
	res, err := pc.Exec(ctx, simple).ReadAll()
	if err != nil || len(res) != 1 || len(res[0].Rows) != 1 {
		t.Fatalf("simple Query: %v %v", res, err)
	}
	if got := string(res[0].Rows[0][0]); got != strconv.Itoa(cluster.Replica.Port) {
		t.Errorf("simple Query ran on port %s, want the replica's %d (split-routed)", got, cluster.Replica.Port)
	}

	unnamed := "SELECT inet_server_port(), 'temp unnamed'::text WHERE $1::int = 1"
	rr := pc.ExecParams(ctx, unnamed, [][]byte{[]byte("1")}, nil, nil, nil).Read()
	if rr.Err != nil || len(rr.Rows) != 1 {
		t.Fatalf("Parse/Bind/Execute of the unnamed statement: %v %v", rr.Rows, rr.Err)
	}

	named := "SELECT inet_server_port(), 'temp named'::text WHERE $1::int = 1"
	pl := pc.StartPipeline(ctx)
	pl.SendPrepare("plan_once", named, nil)
	pl.SendQueryPrepared("plan_once", [][]byte{[]byte("1")}, nil, nil)
	if err := pl.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := drainPipeline(pl); err != nil {
		t.Fatalf("Parse/Bind/Execute of a named statement in one request: %v", err)
	}
	if err := pl.Close(); err != nil {
		t.Fatal(err)
	}

	for _, text := range []string{simple, unnamed, named} {
		if n := counter.Calls(text); n != 1 {
			t.Errorf("%q routed %d times in its one request, want 1", text, n)
		}
	}
}

// drainPipeline reads a pipeline's results up to its Sync.
func drainPipeline(pl *pgconn.Pipeline) error {
	for {
		r, err := pl.GetResults()
		if err != nil {
			return err
		}
		switch r := r.(type) {
		case *pgconn.ResultReader:
			if _, err := r.Close(); err != nil {
				return err
			}
		case *pgconn.PipelineSync, nil:
			return nil
		}
	}
}
