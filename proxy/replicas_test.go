package proxy_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/internal/pgtest"
	"github.com/pgone/pgone/proxy"
)

// TestShowReplicasAndMetrics: a database's replicas are checked; SHOW
// REPLICAS and the metrics show a live replica healthy and one nobody
// listens for down; a reload that removes them stops the checks.
func TestShowReplicasAndMetrics(t *testing.T) {
	t.Parallel()
	deadPort, err := pgtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	p := startObservedProxy(t, func(c *config.Config) {
		db := c.Proxy.Databases[appDB]
		db.Replicas = []proxy.Replica{
			{Host: cluster.Replica.Host, Port: cluster.Replica.Port},
			{Host: "127.0.0.1", Port: deadPort},
		}
		c.Proxy.Databases[appDB] = db
		c.Pool.ReplicaCheckInterval = 100 * time.Millisecond
	}, nil)
	admin := p.console(t, adminUser, adminPassword)
	var rows []map[string]string
	eventually(t, "both replicas checked", func() bool {
		tb := show(t, admin, "SHOW REPLICAS")
		requireCols(t, "SHOW REPLICAS", tb.cols, []string{"database", "host", "port", "state", "usable",
			"lag_seconds", "lag_bytes", "replay_lsn", "checked_ago_ms", "state_changes", "error", "timeline", "primary_state"})
		rows = tb.rows
		return len(rows) == 2 && rows[0]["state"] != "unknown" && rows[1]["state"] != "unknown"
	})
	live, dead := rows[0], rows[1]
	if live["port"] != strconv.Itoa(cluster.Replica.Port) || live["database"] != appDB {
		t.Fatalf("first row is not the live replica: %v", live)
	}
	if live["state"] != "healthy" || live["usable"] != "1" || live["replay_lsn"] == "" || live["error"] != "" {
		t.Errorf("live replica: %v", live)
	}
	if dead["state"] != "down" || dead["usable"] != "0" || dead["error"] == "" {
		t.Errorf("replica nobody listens for: %v", dead)
	}

	body := p.scrape(t)
	liveAddr := "127.0.0.1:" + strconv.Itoa(cluster.Replica.Port)
	deadAddr := "127.0.0.1:" + strconv.Itoa(deadPort)
	for _, want := range []string{
		`pgone_replica_usable{database="appdb",replica="` + liveAddr + `",state="healthy"} 1`,
		`pgone_replica_usable{database="appdb",replica="` + deadAddr + `",state="down"} 0`,
		`pgone_replica_state_changes_total{database="appdb",replica="` + deadAddr + `"} 1`,
		`pgone_replica_lag_bytes{database="appdb",replica="` + liveAddr + `"}`,
		`pgone_replica_lag_seconds{database="appdb",replica="` + liveAddr + `"}`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q:\n%s", want, grepLines(body, "pgone_replica"))
		}
	}

	cfg := *p.Cfg
	cfg.Proxy.Databases = map[string]proxy.Database{} // the running config's map stays as it is
	for name, db := range p.Cfg.Proxy.Databases {
		db.Replicas = nil
		cfg.Proxy.Databases[name] = db
	}
	if err := p.Srv.Reload(cfg.Proxy, cfg.Pool); err != nil {
		t.Fatal(err)
	}
	if tb := show(t, admin, "SHOW REPLICAS"); len(tb.rows) != 0 {
		t.Fatalf("SHOW REPLICAS after the replicas were removed: %v", tb.rows)
	}
}
