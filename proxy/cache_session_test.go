package proxy_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgone/pgone/internal/pgtest"
	"github.com/pgone/pgone/pool"
)

// TestCacheSessionModeWriteSeenByOtherInstance: two pgone instances share
// one Redis; A pools in session mode, B in transaction mode. B has the row
// cached (seen as a hit); a pgx client on A writes it and stays connected.
// B's next read returns the new value: A's commit is published at its
// ReadyForQuery, not when the client leaves. Covered: an autocommit write
// (extended protocol, then the same text again: a Bind of the statement
// pgx prepared in an earlier request), an explicit transaction, an
// autocommit write in the simple protocol. A ROLLBACK publishes nothing:
// B's next read is still a hit.
func TestCacheSessionModeWriteSeenByOtherInstance(t *testing.T) {
	cacheTable(t, "sess_l2", 1)
	r := pgtest.NewRedis(t)
	a := startSharedInstanceIn(t, r.Addr, pool.ModeSession, "sess_l2")
	b := startSharedInstance(t, r.Addr, "sess_l2")
	rb, wa := b.Connect(t), a.Connect(t)
	ctx := testCtx(t)
	const sql = "SELECT v FROM sess_l2 WHERE id = 1"
	const update = "UPDATE sess_l2 SET v = $1 WHERE id = 1"
	cachedOnB := func() { t.Helper(); servedFromCache(t, b.c, func() string { return readV(t, rb, sql) }) }
	writes := []struct {
		name  string
		write func(v string) error
	}{
		{"autocommit", func(v string) error { _, err := wa.Exec(ctx, update, v); return err }},
		{"autocommit again (Bind of a statement prepared earlier)", func(v string) error { _, err := wa.Exec(ctx, update, v); return err }},
		{"explicit transaction", func(v string) error {
			return pgx.BeginFunc(ctx, wa, func(tx pgx.Tx) error { _, err := tx.Exec(ctx, update, v); return err })
		}},
		{"simple protocol", func(v string) error {
			_, err := wa.Exec(ctx, update, pgx.QueryExecModeSimpleProtocol, v)
			return err
		}},
	}
	for i, w := range writes {
		cachedOnB()
		want := fmt.Sprintf("s%d", i)
		if err := w.write(want); err != nil {
			t.Fatalf("%s: %v", w.name, err)
		}
		if got := readV(t, rb, sql); got != want {
			t.Fatalf("%s on session-mode A, client still connected: B read %q, want %q", w.name, got, want)
		}
	}

	// A ROLLBACK wrote nothing: B keeps serving its entry.
	cachedOnB()
	before := readV(t, rb, sql)
	err := pgx.BeginFunc(ctx, wa, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, update, "rolled back"); err != nil {
			return err
		}
		return errRollback
	})
	if err != errRollback {
		t.Fatalf("rolled back transaction: %v", err)
	}
	hits := b.c.Stats().Hits
	if got := readV(t, rb, sql); got != before || b.c.Stats().Hits != hits+1 {
		t.Fatalf("after A's ROLLBACK B read %q (hits %d->%d), want %q from its cache", got, hits, b.c.Stats().Hits, before)
	}
	if err := wa.Ping(context.Background()); err != nil {
		t.Fatalf("A's client: %v", err)
	}
}

// errRollback makes pgx.BeginFunc roll back.
var errRollback = fmt.Errorf("roll back")
