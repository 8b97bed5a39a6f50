package proxy_test

import (
	"testing"
)

// TestSplitServerDependentReadsOnPrimary: with the split on, reads of
// per-server state run on the primary (issue 10, item 7): a client asking
// pg_is_in_recovery() or looking for its own backend in pg_stat_activity
// talks about the primary it writes to, not a replica. A replica hint
// still reaches the replica.
func TestSplitServerDependentReadsOnPrimary(t *testing.T) {
	t.Parallel()
	const db = "perserver"
	p, reader := readySplit(t, db, nil)
	ctx := testCtx(t)
	primary, replica := cluster.Primary.Port, cluster.Replica.Port

	for _, tc := range []struct {
		name, sql string
		want      int
	}{
		// inet_server_port is in the test's read_functions: a plain read.
		{"read", portQuery, replica},
		{"pg_backend_pid", "SELECT inet_server_port() WHERE pg_backend_pid() > 0", primary},
		{"pg_is_in_recovery", "SELECT inet_server_port() WHERE NOT pg_is_in_recovery()", primary},
		{"pg_stat_activity", "SELECT inet_server_port() FROM pg_stat_activity WHERE pid = pg_backend_pid()", primary},
		{"pg_locks", "SELECT inet_server_port() WHERE (SELECT count(*) FROM pg_catalog.pg_locks) >= 0", primary},
		{"pg_stat_user_tables", "SELECT inet_server_port() WHERE (SELECT count(*) FROM pg_stat_user_tables) >= 0", primary},
		{"hint", "/* pgone:replica */ SELECT inet_server_port() WHERE pg_is_in_recovery()", replica},
	} {
		// A client per case: no earlier statement of its own fences it.
		c := connect(t, p.DSN(appUser, appPassword, db))
		if got := serverPort(t, ctx, c, tc.sql); got != tc.want {
			t.Errorf("%s: ran on port %d, want %d (primary %d, replica %d)", tc.name, got, tc.want, primary, replica)
		}
	}
	var inRecovery bool
	if err := reader.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil || inRecovery {
		t.Errorf("SELECT pg_is_in_recovery() through pgone = %v, %v; want false: the primary answers", inRecovery, err)
	}
	body := p.scrape(t)
	if want := `pgone_route_requests_total{database="` + db + `",reason="server_dependent",route="primary"}`; metricValue(t, body, want) < 6 {
		t.Errorf("%s < 6:\n%s", want, grepLines(body, "pgone_route"))
	}
}
