package proxy_test

import "testing"

func TestSimpleQueryThroughProxy(t *testing.T) {
	p := startProxy(t, nil)
	conn := p.Connect(t)
	var n int
	var inRecovery bool
	if err := conn.QueryRow(testCtx(t), "SELECT 41 + 1, pg_is_in_recovery()").Scan(&n, &inRecovery); err != nil {
		t.Fatal(err)
	}
	if n != 42 || inRecovery {
		t.Fatalf("got %d, in recovery %v; want 42 from the primary", n, inRecovery)
	}
}
