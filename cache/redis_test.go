package cache

import (
	"bytes"
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/pgone/pgone/internal/pgtest"
)

// sharedCache is an instance of the cache on Redis at addr, started and
// closed with the test, with the default lease (leasedCache).
func sharedCache(t *testing.T, addr string) *Cache {
	t.Helper()
	return leasedCache(t, addr, 0, 0)
}

// waitL2 waits until c's L2 state is want.
func waitL2(t *testing.T, c *Cache, want string) {
	t.Helper()
	waitFor(t, "L2 "+want, func() bool { s, _ := c.L2Stats(); return s.State == want })
}

// fillOnce looks k up on c, which must miss, and stores reply.
func fillOnce(t *testing.T, c *Cache, k Key, reply string) Refusal {
	t.Helper()
	got, f := c.Lookup(context.Background(), k, "db", []string{"t"})
	if f == nil {
		t.Fatalf("lookup of %s hit (%q), want a miss", k, got)
	}
	return f.Store([]byte(reply), time.Minute, Origin{})
}

func lookupHit(c *Cache, k Key) ([]byte, bool) {
	r, f := c.Lookup(context.Background(), k, "db", []string{"t"})
	if f != nil {
		f.Abandon()
		return nil, false
	}
	return r, true
}

// TestL2SharedAcrossInstances: a fill on A is an L2 hit on B with the
// same bytes; a commit on B makes A's L1 entry a miss, before B's commit
// call returns.
func TestL2SharedAcrossInstances(t *testing.T) {
	r := pgtest.NewRedis(t)
	a, b := sharedCache(t, r.Addr), sharedCache(t, r.Addr)
	k := Key{1}
	if got := fillOnce(t, a, k, "reply-1"); got != RefuseNone {
		t.Fatalf("fill on A refused: %s", got)
	}
	got, ok := lookupHit(b, k)
	if !ok || !bytes.Equal(got, []byte("reply-1")) {
		t.Fatalf("B: hit %v %q, want the L2 entry", ok, got)
	}
	if s, _ := b.L2Stats(); s.Hits != 1 {
		t.Fatalf("B's L2 hits %d, want 1", s.Hits)
	}
	if _, ok := lookupHit(a, k); !ok {
		t.Fatal("A: no L1 hit on its own fill")
	}
	var tx Tx
	tx.Mark(b.Versions(), "db", []string{"t"})
	tx.Commit(UnknownLSN, nil) // publishes before it returns
	if _, ok := lookupHit(a, k); ok {
		t.Fatal("A served its entry after B's commit returned")
	}
	if _, ok := lookupHit(b, k); ok {
		t.Fatal("B served the entry after its own commit")
	}
}

// TestL2FillRefusedAfterRemoteBump: a fill whose read was sent before a
// commit on another instance is refused at its store, in L2 and L1.
func TestL2FillRefusedAfterRemoteBump(t *testing.T) {
	r := pgtest.NewRedis(t)
	a, b := sharedCache(t, r.Addr), sharedCache(t, r.Addr)
	k := Key{2}
	_, f := a.Lookup(context.Background(), k, "db", []string{"t"})
	if f == nil {
		t.Fatal("first lookup hit")
	}
	b.Versions().Bump("db", []string{"t"}, 0)
	if got := f.Store([]byte("old"), time.Minute, Origin{}); got != RefuseVersion {
		t.Fatalf("store after B's bump: %s, want %s", got, RefuseVersion)
	}
	for name, c := range map[string]*Cache{"A": a, "B": b} {
		if got, ok := lookupHit(c, k); ok {
			t.Fatalf("%s served the refused fill %q", name, got)
		}
	}
}

// TestL2RedisKilledBypassesThenRecovers: with Redis gone the cache
// bypasses (no hit, no fill, no error) and L1 is flushed; once Redis is
// back the bus resyncs and fills and hits resume.
func TestL2RedisKilledBypassesThenRecovers(t *testing.T) {
	r := pgtest.NewRedis(t)
	a := sharedCache(t, r.Addr)
	k := Key{3}
	fillOnce(t, a, k, "before")
	if _, ok := lookupHit(a, k); !ok {
		t.Fatal("no hit before the kill")
	}
	if err := r.Kill(); err != nil {
		t.Fatal(err)
	}
	waitL2(t, a, "down")
	if _, ok := lookupHit(a, k); ok {
		t.Fatal("hit while Redis is down")
	}
	if got := fillOnce(t, a, k, "during"); got != RefuseStore {
		t.Fatalf("fill while down: %s, want %s", got, RefuseStore)
	}
	if err := r.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitL2(t, a, "up")
	if got := fillOnce(t, a, k, "after"); got != RefuseNone {
		t.Fatalf("fill after recovery: %s", got)
	}
	if got, ok := lookupHit(a, k); !ok || string(got) != "after" {
		t.Fatalf("after recovery: hit %v %q, want \"after\"", ok, got)
	}
}

// TestL2CodecRoundTrip: an encoded entry decodes to what was encoded and
// is valid only for exactly its tables and versions.
func TestL2CodecRoundTrip(t *testing.T) {
	tables := []TableVersion{{Table: "a"}, {Table: "b"}}
	rt := remoteToken{gen: "g1", all: 2, epoch: 3, versions: []uint64{4, 5}}
	b := encodeRemote("db", tables, &rt, 1500*time.Millisecond, []byte("reply"))
	e, err := decodeRemote(b)
	if err != nil {
		t.Fatal(err)
	}
	if string(e.reply) != "reply" || e.ttl != 1500*time.Millisecond || !e.validFor("db", tables, &rt) {
		t.Fatalf("decoded %+v", e)
	}
	moved := rt
	moved.versions = []uint64{4, 6}
	for name, bad := range map[string]remoteToken{
		"version": moved, "gen": {gen: "g2", all: 2, epoch: 3, versions: rt.versions},
		"epoch": {gen: "g1", all: 2, epoch: 4, versions: rt.versions}, "all": {gen: "g1", all: 1, epoch: 3, versions: rt.versions},
	} {
		if e.validFor("db", tables, &bad) {
			t.Errorf("valid after the %s moved", name)
		}
	}
	if e.validFor("db2", tables, &rt) {
		t.Error("valid for another database")
	}
	for i := range b {
		if _, err := decodeRemote(b[:i]); err == nil && i < len(b)-len("reply") {
			t.Fatalf("a value cut at %d decoded", i)
		}
	}
}

// TestL2RedisHungTimesOutAndBreaks: with redis-server stopped (SIGSTOP:
// connections stay open, nothing answers) a lookup costs at most about
// the timeout, never an error; the breaker opens and the cache bypasses
// without asking Redis; after SIGCONT a probe closes it and the bus
// resyncs.
func TestL2RedisHungTimesOutAndBreaks(t *testing.T) {
	r := pgtest.NewRedis(t)
	cfg := Config{Mode: ModeRules, Redis: Redis{Address: r.Addr, Timeout: 20 * time.Millisecond,
		BreakerFailures: 2, BreakerCooldown: 100 * time.Millisecond}}
	cfg.Defaults()
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a.Start(nil)
	t.Cleanup(a.Close)
	waitL2(t, a, "up")
	k := Key{4}
	fillOnce(t, a, k, "x")
	pid := r.Pid()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
	for i := 0; i < 10; i++ {
		began := time.Now()
		if _, ok := lookupHit(a, k); ok {
			t.Fatalf("lookup %d hit while Redis hangs", i)
		}
		if d := time.Since(began); d > 500*time.Millisecond {
			t.Fatalf("lookup %d took %s with a 20ms timeout", i, d)
		}
	}
	waitL2(t, a, "down")
	if s, _ := a.L2Stats(); s.Errors == 0 || s.Bypassed == 0 {
		t.Fatalf("no errors or bypasses counted while Redis hangs: %+v", s)
	}
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitL2(t, a, "up")
	if s, _ := a.L2Stats(); s.Breaker != BreakerClosed {
		t.Fatalf("breaker %s after recovery", s.Breaker)
	}
	if got := fillOnce(t, a, k, "y"); got != RefuseNone {
		t.Fatalf("fill after recovery: %s", got)
	}
}

// FuzzDecodeRemote: any bytes from Redis decode to an entry or an error,
// never a panic; an entry re-encodes to the same bytes.
func FuzzDecodeRemote(f *testing.F) {
	rt := remoteToken{gen: "g", all: 1, epoch: 2, versions: []uint64{3}}
	f.Add(encodeRemote("db", []TableVersion{{Table: "t"}}, &rt, time.Second, []byte("reply")))
	f.Add([]byte{l2Magic, l2Format})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeRemote(b)
		if err != nil {
			return
		}
		rt := remoteToken{gen: e.gen, all: e.all, epoch: e.epoch}
		for _, tv := range e.tables {
			rt.versions = append(rt.versions, tv.Version)
		}
		if again := encodeRemote(e.db, e.tables, &rt, e.ttl, e.reply); !bytes.Equal(again, b) {
			t.Fatalf("re-encoded %q, decoded from %q", again, b)
		}
	})
}

// TestL2PromotionDuringOwnCommit: a lookup on the committing instance
// that runs while its commit is being published (after PostgreSQL
// committed, before the client is told) may be served the old L2 entry,
// but must not leave it in L1 under versions that already count the
// commit: once the commit returned, the next lookup misses.
func TestL2PromotionDuringOwnCommit(t *testing.T) {
	r := pgtest.NewRedis(t)
	a, b := sharedCache(t, r.Addr), sharedCache(t, r.Addr)
	k := Key{5}
	if got := fillOnce(t, a, k, "old"); got != RefuseNone {
		t.Fatalf("fill on A: %s", got)
	}
	publish := b.versions.onBump
	b.versions.onBump = func(db string, tables []string, epoch bool) func() {
		if got, ok := lookupHit(b, k); !ok || string(got) != "old" {
			t.Errorf("lookup during the commit: hit %v %q, want the old L2 entry", ok, got)
		}
		return publish(db, tables, epoch)
	}
	var tx Tx
	tx.Mark(b.Versions(), "db", []string{"t"})
	tx.Commit(UnknownLSN, nil)
	if got, ok := lookupHit(b, k); ok {
		t.Fatalf("B served %q after its commit returned", got)
	}
}
