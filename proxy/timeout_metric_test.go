package proxy_test

import (
	"strings"
	"testing"
	"time"

	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/pool"
)

// TestQueryTimeoutMetric: a request cancelled for query_timeout counts
// once in pgone_proxy_query_timeouts_total of its database and user, in
// both pool modes, as the metrics endpoint shows; a request within the
// limit counts nothing. (One timeout per client: in session mode a
// request sent right after a timeout can meet a late SIGINT of its
// cancel, a race of its own.)
func TestQueryTimeoutMetric(t *testing.T) {
	for _, mode := range []pool.Mode{pool.ModeTransaction, pool.ModeSession} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			p := startObservedProxy(t, func(c *config.Config) {
				c.Pool.Mode = mode
				c.Proxy.Limits.QueryTimeout = 200 * time.Millisecond
			}, nil)
			const series = `pgone_proxy_query_timeouts_total{database="appdb",user="app"}`
			conn := p.Connect(t)
			if _, err := conn.Exec(testCtx(t), "SELECT pg_sleep(0.01)"); err != nil {
				t.Fatal(err)
			}
			if text := p.scrape(t); strings.Contains(text, series) {
				t.Fatalf("a request within query_timeout was counted:\n%s", grepLines(text, "pgone_proxy_query_timeouts_total"))
			}
			if _, err := conn.Exec(testCtx(t), "SELECT pg_sleep(3) /* metric */"); pgerr(err) != "57014" {
				t.Fatalf("pg_sleep(3) with query_timeout 200ms: %v; want 57014", err)
			}
			if text := p.scrape(t); !strings.Contains(text, series+" 1\n") {
				t.Fatalf("after one query_timeout, want %s 1; got: %q", series, grepLines(text, "pgone_proxy_query_timeouts_total"))
			}
		})
	}
}
