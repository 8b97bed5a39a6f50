package proxy_test

import "testing"

// TestTxModeServerHeldForTheWholeTransaction: in transaction mode a client
// keeps its server from BEGIN to COMMIT. Were the server released at a
// ReadyForQuery inside the transaction, the next client would get it (an
// idle server before a new one) and run inside the first client's
// transaction, seeing its uncommitted row.
func TestTxModeServerHeldForTheWholeTransaction(t *testing.T) {
	t.Parallel()
	execOnPrimary(t, `DROP TABLE IF EXISTS txhold_t; CREATE TABLE txhold_t (x int); GRANT ALL ON txhold_t TO `+appUser)
	p := txProxy(t, 2, nil)
	ctx := testCtx(t)
	a := p.Connect(t)
	b := p.Connect(t)
	tx, err := a.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var pidA uint32
	if err := tx.QueryRow(ctx, "INSERT INTO txhold_t VALUES (1) RETURNING pg_backend_pid()").Scan(&pidA); err != nil {
		t.Fatal(err)
	}
	var n int
	var pidB uint32
	if err := b.QueryRow(ctx, "SELECT count(*), pg_backend_pid() FROM txhold_t").Scan(&n, &pidB); err != nil {
		t.Fatal(err)
	}
	if pidB == pidA || n != 0 {
		t.Fatalf("another client ran on backend %d (the open transaction's is %d) and saw %d uncommitted rows", pidB, pidA, n)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if n := scanSingle[int](t, b, "SELECT count(*) FROM txhold_t"); n != 1 {
		t.Fatalf("after COMMIT: %d rows, want 1", n)
	}
}
