package pool

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func prometheusRegistry() *prometheus.Registry { return prometheus.NewRegistry() }

func TestMetricsReadPoolsAtScrape(t *testing.T) {
	t.Parallel()
	f := startFakeServer(t)
	m := testManager(t, time.Second)
	key := Key{Database: "db", User: "u"}
	ctx := ctxFor(t)
	// A pool made before registration gets its histograms too.
	c, err := m.Acquire(ctx, key, f.target())
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	if err := m.RegisterMetrics(reg); err != nil {
		t.Fatal(err)
	}
	r := c.Counters().Recorder()
	r.AddQuery(3 * time.Millisecond)
	r.AddTransaction(4 * time.Millisecond)
	r.AddWait(time.Millisecond)
	r.AddBytes(100, 250)

	l := `database="db",role="primary",server="` + f.target().addr() + `"`
	want := `
# HELP pgone_pool_server_connections Server connections open or being dialed, all pools.
# TYPE pgone_pool_server_connections gauge
pgone_pool_server_connections 1
# HELP pgone_pool_servers Server connections of a pool by state: active (held by a client), idle, login (being dialed).
# TYPE pgone_pool_servers gauge
pgone_pool_servers{` + l + `,state="active",user="u"} 1
pgone_pool_servers{` + l + `,state="idle",user="u"} 0
pgone_pool_servers{` + l + `,state="login",user="u"} 0
# HELP pgone_pool_size Server connections a pool may open now: its configured pool_size, or the size the tuner's pool_size loop set.
# TYPE pgone_pool_size gauge
pgone_pool_size{` + l + `,user="u"} 2
# HELP pgone_pool_queries_total Requests answered by ReadyForQuery through a pool.
# TYPE pgone_pool_queries_total counter
pgone_pool_queries_total{` + l + `,user="u"} 1
# HELP pgone_pool_sent_bytes_total Bytes sent to the clients of a pool.
# TYPE pgone_pool_sent_bytes_total counter
pgone_pool_sent_bytes_total{` + l + `,user="u"} 250
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"pgone_pool_server_connections", "pgone_pool_servers", "pgone_pool_size", "pgone_pool_queries_total", "pgone_pool_sent_bytes_total"); err != nil {
		t.Fatal(err)
	}
	for name, n := range map[string]int{
		"pgone_pool_query_duration_seconds":       1,
		"pgone_pool_transaction_duration_seconds": 1,
		"pgone_pool_wait_duration_seconds":        1,
	} {
		if got := testutil.CollectAndCount(reg, name); got != n {
			t.Errorf("%s: %d series, want %d", name, got, n)
		}
	}
	m.Release(c)
	// A pool that never served anything adds no series.
	if _, err := m.Acquire(ctx, Key{Database: "nosuchdb", User: "u"}, Target{Host: "127.0.0.1", Port: 1, Database: "x", User: "u"}); err == nil {
		t.Fatal("dial to port 1 succeeded")
	}
	if n := testutil.CollectAndCount(reg, "pgone_pool_servers"); n != 3 {
		t.Errorf("pgone_pool_servers has %d series, want 3 (the empty pool left out)", n)
	}
}
