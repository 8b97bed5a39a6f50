package proxy_test

import (
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgone/pgone/cache"
	"github.com/pgone/pgone/internal/pgtest"
	"github.com/pgone/pgone/pool"
)

// chainScripts are transactions whose COMMIT AND CHAIN commits while the
// transaction stays open (status 'T'), each with the value a read must see
// afterwards. %s is the table. The ROLLBACK AND CHAIN one rolls back only
// what the chained transaction wrote, not the commit before it.
var chainScripts = []struct {
	name string
	sqls []string
	want string
}{
	{"commit and chain, then rollback", []string{
		"BEGIN", "UPDATE %s SET v = 'chained' WHERE id = 1", "COMMIT AND CHAIN", "ROLLBACK"}, "chained"},
	{"commit and chain, write, rollback and chain, rollback", []string{
		"BEGIN", "UPDATE %s SET v = 'kept' WHERE id = 1", "COMMIT AND CHAIN",
		"UPDATE %s SET v = 'dropped' WHERE id = 1", "ROLLBACK AND CHAIN", "ROLLBACK"}, "kept"},
}

// runChain runs a chain script's statements one request each (simple
// protocol: pgx sends a text without arguments as a Query).
func runChain(t *testing.T, conn *pgx.Conn, table string, sqls []string) {
	t.Helper()
	ctx := testCtx(t)
	for _, s := range sqls {
		sql := strings.ReplaceAll(s, "%s", table)
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
}

// TestCacheTxModeCommitAndChainInvalidates: in transaction mode a reader
// has the row cached (seen as a hit); a writer's COMMIT AND CHAIN commits
// an UPDATE while its transaction stays open, and a later ROLLBACK (or
// ROLLBACK AND CHAIN) ends the chained one. The reader's next read returns
// the committed value, not the cached one: the commit's marks end (bump)
// at the COMMIT AND CHAIN's own ReadyForQuery, whatever the status.
func TestCacheTxModeCommitAndChainInvalidates(t *testing.T) {
	cacheTable(t, "cache_chain_tx", 1)
	p, c := startCacheProxy(t, func(c *cache.Config) {
		c.Rules = []cache.Rule{{Table: "cache_chain_tx", TTL: time.Hour}}
	})
	reader, writer := p.Connect(t), p.Connect(t)
	const sql = "SELECT v FROM cache_chain_tx WHERE id = 1"
	for _, sc := range chainScripts {
		readV(t, reader, sql)
		waitUntil(t, "the reader's hit", func() bool {
			h := c.Stats().Hits
			readV(t, reader, sql)
			return c.Stats().Hits > h
		})
		runChain(t, writer, "cache_chain_tx", sc.sqls)
		if got := readV(t, reader, sql); got != sc.want {
			t.Fatalf("%s: reader read %q, want %q (stale cache entry served)", sc.name, got, sc.want)
		}
	}
}

// TestCacheSessionModeCommitAndChainPublished: instance A pools in session
// mode, B in transaction mode, sharing one Redis; B has the row cached. A
// client on A commits with COMMIT AND CHAIN: B's next read sees the new
// value while that client is still in the chained transaction, and again
// after the chained transaction's ROLLBACK (or ROLLBACK AND CHAIN, which
// drops only what the chained transaction wrote).
func TestCacheSessionModeCommitAndChainPublished(t *testing.T) {
	cacheTable(t, "sess_chain", 1)
	r := pgtest.NewRedis(t)
	a := startSharedInstanceIn(t, r.Addr, pool.ModeSession, "sess_chain")
	b := startSharedInstance(t, r.Addr, "sess_chain")
	rb, wa := b.Connect(t), a.Connect(t)
	const sql = "SELECT v FROM sess_chain WHERE id = 1"
	cachedOnB := func() {
		t.Helper()
		readV(t, rb, sql)
		waitUntil(t, "B's hit", func() bool {
			h := b.c.Stats().Hits
			readV(t, rb, sql)
			return b.c.Stats().Hits > h
		})
	}

	// Still in the chained transaction: the commit is published already.
	cachedOnB()
	runChain(t, wa, "sess_chain", []string{"BEGIN", "UPDATE %s SET v = 'open' WHERE id = 1", "COMMIT AND CHAIN"})
	if got := readV(t, rb, sql); got != "open" {
		t.Fatalf("A still in the chained transaction: B read %q, want %q", got, "open")
	}
	runChain(t, wa, "sess_chain", []string{"ROLLBACK"})

	for _, sc := range chainScripts {
		cachedOnB()
		runChain(t, wa, "sess_chain", sc.sqls)
		if got := readV(t, rb, sql); got != sc.want {
			t.Fatalf("%s on session-mode A: B read %q, want %q (stale cache entry served)", sc.name, got, sc.want)
		}
	}
}

// TestCacheTxModeCommitAndChainPublished: two transaction-mode instances
// share one Redis and B has the row cached. A client on A commits with
// COMMIT AND CHAIN and stays in the chained transaction: B's next read
// sees the new value (the commit is published at the COMMIT AND CHAIN's
// ReadyForQuery, not when the chained transaction ends).
func TestCacheTxModeCommitAndChainPublished(t *testing.T) {
	cacheTable(t, "tx_chain_l2", 1)
	r := pgtest.NewRedis(t)
	a, b := startSharedInstance(t, r.Addr, "tx_chain_l2"), startSharedInstance(t, r.Addr, "tx_chain_l2")
	rb, wa := b.Connect(t), a.Connect(t)
	const sql = "SELECT v FROM tx_chain_l2 WHERE id = 1"
	readV(t, rb, sql)
	waitUntil(t, "B's hit", func() bool {
		h := b.c.Stats().Hits
		readV(t, rb, sql)
		return b.c.Stats().Hits > h
	})
	runChain(t, wa, "tx_chain_l2", []string{"BEGIN", "UPDATE %s SET v = 'open' WHERE id = 1", "COMMIT AND CHAIN"})
	if got := readV(t, rb, sql); got != "open" {
		t.Fatalf("A still in the chained transaction: B read %q, want %q", got, "open")
	}
	runChain(t, wa, "tx_chain_l2", []string{"ROLLBACK"})
}
