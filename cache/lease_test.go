package cache

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pgone/pgone/internal/pgtest"
)

// leasedCache is an instance of the cache on Redis at addr, started and
// closed with the test, with lease and member timeout (0: the defaults).
func leasedCache(t *testing.T, addr string, lease, memberTimeout time.Duration) *Cache {
	t.Helper()
	cfg := Config{Mode: ModeRules, Redis: Redis{Address: addr, Timeout: 500 * time.Millisecond,
		BreakerCooldown: 50 * time.Millisecond, Lease: lease, MemberTimeout: memberTimeout}}
	cfg.Defaults()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.Start(nil)
	t.Cleanup(c.Close)
	waitL2(t, c, "up")
	return c
}

// waitMembers waits until Redis's members hash has n instances.
func waitMembers(t *testing.T, rdb *redis.Client, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d members in redis", n), func() bool {
		got, err := rdb.HLen(context.Background(), "pgone:m").Result()
		return err == nil && int(got) == n
	})
}

// waitHit waits until k is a hit on c with reply (the cache serves again),
// filling it after each miss (refused while the cache bypasses).
func waitHit(t *testing.T, c *Cache, k Key, reply string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("a hit of %s", k), func() bool {
		if got, ok := lookupHit(c, k); ok {
			if string(got) != reply {
				t.Fatalf("hit %q, want %q", got, reply)
			}
			return true
		}
		if _, f := c.Lookup(context.Background(), k, "db", []string{"t"}); f != nil {
			f.Store([]byte(reply), time.Minute, Origin{})
		}
		return false
	})
}

// TestL2PartialPartitionNoStaleHit: instance A is cut off from Redis
// while B is not. A commit on A cannot reach Redis; when the commit call
// returns (its client would learn of it), B must not serve the entry that
// commit made stale, from L1 or L2. Once A reaches Redis again, its
// resync flushes every instance and B serves again.
func TestL2PartialPartitionNoStaleHit(t *testing.T) {
	r := pgtest.NewRedis(t)
	cut := pgtest.NewCuttable(t, r.Addr)
	const lease = 400 * time.Millisecond
	a := leasedCache(t, cut.Addr(), lease, time.Minute)
	b := leasedCache(t, r.Addr, lease, time.Minute)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer rdb.Close()
	waitMembers(t, rdb, 2)

	k := Key{9}
	waitHit(t, b, k, "before")

	cut.Cut()
	began := time.Now()
	var tx Tx
	tx.Mark(a.Versions(), "db", []string{"t"})
	tx.Commit(UnknownLSN, nil) // its bump cannot reach Redis
	held := time.Since(began)
	if s, _ := a.L2Stats(); s.State != "down" {
		t.Fatalf("A's L2 is %q after a failed bump, want down", s.State)
	}
	// The commit's reply is held until A's lease ended; B now bypasses.
	if got, ok := lookupHit(b, k); ok {
		t.Fatalf("B served %q after A's commit returned (held %s): stale", got, held)
	}
	if held < lease/2 {
		t.Errorf("A's commit returned after %s, before its lease (%s) could have ended", held, lease)
	}
	if s, _ := b.L2Stats(); s.Lapsed == 0 {
		t.Errorf("B counted no lapsed lease: %+v", s)
	}

	cut.Mend()
	waitL2(t, a, "up")
	// A's resync flushed everything: B's old entry is gone for good.
	waitHit(t, b, k, "after")
}

// TestL2DeadMemberRemovedAndFlushed: an instance that died without
// leaving (its lease in Redis lapsed) makes every instance bypass; after
// member_timeout the next renewal removes it and flushes every instance,
// then the cache serves again, without the entries from before.
func TestL2DeadMemberRemovedAndFlushed(t *testing.T) {
	r := pgtest.NewRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer rdb.Close()
	b := leasedCache(t, r.Addr, 200*time.Millisecond, 500*time.Millisecond)
	waitMembers(t, rdb, 1)
	k := Key{10}
	waitHit(t, b, k, "before")

	// A member whose lease ended long ago, as a pgone that was killed.
	ctx := context.Background()
	now, err := rdb.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.HSet(ctx, "pgone:m", "dead", now.UnixMilli()-100).Err(); err != nil {
		t.Fatal(err)
	}
	if got, ok := lookupHit(b, k); ok {
		t.Fatalf("B served %q while a member's lease had lapsed", got)
	}
	waitMembers(t, rdb, 1)    // removed by B's renewal after member_timeout
	waitHit(t, b, k, "after") // the flush dropped "before"
}

// TestL2LeaveAtClose: an instance that closes cleanly leaves the members,
// so the others do not bypass for it.
func TestL2LeaveAtClose(t *testing.T) {
	r := pgtest.NewRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer rdb.Close()
	a := leasedCache(t, r.Addr, 200*time.Millisecond, time.Minute)
	b := leasedCache(t, r.Addr, 200*time.Millisecond, time.Minute)
	waitMembers(t, rdb, 2)
	a.Close()
	waitMembers(t, rdb, 1)
	waitHit(t, b, Key{11}, "served")
}

// TestL2LateRenewalRefused: a renewal that reaches Redis after its
// not-after time (delayed in the network, or Redis paused) does not set
// the lease, so it cannot outlive what the instance counted on.
func TestL2LateRenewalRefused(t *testing.T) {
	r := pgtest.NewRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer rdb.Close()
	ctx := context.Background()
	now, err := rdb.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{"pgone:m", "pgone:all", "pgone:seq", "pgone:clock", "pgone:gen"}
	res, err := renewScript.Run(ctx, rdb, keys, "late", 1000, 30000, now.UnixMilli()-1, "pgone:inval").Slice()
	if err != nil || len(res) != 2 || res[1] != int64(-1) {
		t.Fatalf("late renewal answered %v, %v; want refused (-1)", res, err)
	}
	if n, _ := rdb.HLen(ctx, "pgone:m").Result(); n != 0 {
		t.Fatalf("a refused renewal left %d members", n)
	}
	res, err = renewScript.Run(ctx, rdb, keys, "timely", 1000, 30000, now.UnixMilli()+60000, "pgone:inval").Slice()
	if err != nil || len(res) != 4 || res[1] != int64(0) || res[3] != "timely" {
		t.Fatalf("timely renewal answered %v, %v; want set, none removed, the members", res, err)
	}
	if end, _ := rdb.HGet(ctx, "pgone:m", "timely").Int64(); end < now.UnixMilli()+1000 {
		t.Fatalf("lease ends at %d, want at least %d", end, now.UnixMilli()+1000)
	}
}

// TestL2HeldCommitReturnsWhenRedisIsBack: a commit held because its bump
// did not reach Redis returns as soon as a retry of the bump lands, well
// before its lease ends; the other instance then no longer serves what
// it made stale.
func TestL2HeldCommitReturnsWhenRedisIsBack(t *testing.T) {
	r := pgtest.NewRedis(t)
	cut := pgtest.NewCuttable(t, r.Addr)
	const lease = time.Minute // a held commit would wait about this long
	a := leasedCache(t, cut.Addr(), lease, 2*lease)
	b := leasedCache(t, r.Addr, lease, 2*lease)
	k := Key{12}
	waitHit(t, b, k, "before")

	cut.Cut()
	done := make(chan struct{})
	go func() {
		defer close(done)
		var tx Tx
		tx.Mark(a.Versions(), "db", []string{"t"})
		tx.Commit(UnknownLSN, nil)
	}()
	waitFor(t, "A's commit held", func() bool { s, _ := a.L2Stats(); return s.LeaseWaits == 1 })
	cut.Mend()
	select {
	case <-done:
	case <-time.After(lease / 2):
		t.Fatal("the held commit did not return once Redis was reachable again")
	}
	if got, ok := lookupHit(b, k); ok {
		t.Fatalf("B served %q after A's held commit returned", got)
	}
}

// TestL2RedisLostDataPeersLapsed: Redis restarts empty (its members
// gone) while A is cut off from it. B resyncs with the new incarnation and
// must not serve, since A may have commits nobody heard of: it enters A
// as lapsed. Once A is back (its resync flushes), B serves again.
func TestL2RedisLostDataPeersLapsed(t *testing.T) {
	r := pgtest.NewRedis(t)
	cut := pgtest.NewCuttable(t, r.Addr)
	a := leasedCache(t, cut.Addr(), 300*time.Millisecond, time.Minute)
	b := leasedCache(t, r.Addr, 300*time.Millisecond, time.Minute)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer rdb.Close()
	waitMembers(t, rdb, 2)
	waitFor(t, "B knows A as a peer", func() bool {
		b.l2.lease.mu.Lock()
		defer b.l2.lease.mu.Unlock()
		_, ok := b.l2.lease.peers[a.l2.origin]
		return ok
	})

	cut.Cut()
	if err := r.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := r.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitL2(t, b, "up")
	k := Key{13}
	for i := 0; i < 3; i++ {
		if _, f := b.Lookup(context.Background(), k, "db", []string{"t"}); f != nil {
			f.Store([]byte("during"), time.Minute, Origin{})
		}
		if got, ok := lookupHit(b, k); ok {
			t.Fatalf("B served %q while A, cut off, was unknown to the new Redis", got)
		}
	}
	cut.Mend()
	waitL2(t, a, "up")
	waitHit(t, b, k, "after")
}

// TestL2ClockSteppedBack: while Redis's clock is behind the latest time a
// renewal saw, no lease is trusted (the cache bypasses) and renewals are
// refused; once it has caught up the cache serves.
func TestL2ClockSteppedBack(t *testing.T) {
	r := pgtest.NewRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer rdb.Close()
	b := leasedCache(t, r.Addr, 300*time.Millisecond, time.Minute)
	k := Key{14}
	waitHit(t, b, k, "before")
	ctx := context.Background()
	now, err := rdb.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	// As if Redis's clock had just stepped back an hour.
	if err := rdb.Set(ctx, "pgone:clock", now.Add(time.Hour).UnixMilli(), 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got, ok := lookupHit(b, k); ok {
		t.Fatalf("B served %q with Redis's clock behind its high-water mark", got)
	}
	if err := rdb.Del(ctx, "pgone:clock").Err(); err != nil {
		t.Fatal(err)
	}
	waitHit(t, b, k, "before")
}

// TestL2RenewalOfAnotherIncarnationKeepsPeers: a renewal answered by a
// Redis incarnation this instance has not resynced with (Redis lost its
// data a moment ago) must not replace the peers it knew: the resync's
// newIncarnation enters those as lapsed.
func TestL2RenewalOfAnotherIncarnationKeepsPeers(t *testing.T) {
	r := pgtest.NewRedis(t)
	a := leasedCache(t, r.Addr, 300*time.Millisecond, time.Minute)
	b := leasedCache(t, r.Addr, 300*time.Millisecond, time.Minute)
	peers := func() int {
		b.l2.lease.mu.Lock()
		defer b.l2.lease.mu.Unlock()
		return len(b.l2.lease.peers)
	}
	waitFor(t, "B knows A as a peer", func() bool { return peers() == 1 })
	a.Close() // A leaves: a renewal in B's incarnation would forget it
	b.l2.lease.mu.Lock()
	b.l2.lease.gen = "an incarnation B synced with before"
	b.l2.lease.mu.Unlock()
	if err := b.l2.renew(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := peers(); n != 1 {
		t.Fatalf("B knows %d peers after a renewal from another incarnation, want the 1 it knew", n)
	}
}

// TestL2NoRenewalWhileFlushOwed: a bump is owed (it did not reach
// Redis) and the resync's flush has not landed yet: no renewal may extend
// the lease (a held commit counts on its lease ending; were the flush to
// fail after such a renewal landed, the others would go on serving what
// the commit made stale). An owe made while the flush is in flight is not
// lost: the next resync flushes again. Once a flush landed the lease is
// renewed again.
func TestL2NoRenewalWhileFlushOwed(t *testing.T) {
	r := pgtest.NewRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer rdb.Close()
	a := leasedCache(t, r.Addr, 400*time.Millisecond, time.Minute)
	l := a.l2
	ctx := context.Background()
	expiry := func() int64 {
		t.Helper()
		v, err := rdb.HGet(ctx, "pgone:m", l.origin).Int64()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	waitMembers(t, rdb, 1)

	type flush struct {
		owed    bool          // a bump was owed as the flush was about to be sent
		release chan struct{} // closed: the flush goes on
	}
	flushes := make(chan flush)
	ended := make(chan struct{}) // the test ended: no flush waits (runs before a.Close)
	t.Cleanup(func() { l.bus.beforeFlush.Store(nil); close(ended) })
	hook := func() {
		f := flush{owed: l.bus.owed(), release: make(chan struct{})}
		select {
		case flushes <- f:
		case <-ended:
			return
		}
		select {
		case <-f.release:
		case <-ended:
		}
	}
	l.bus.beforeFlush.Store(&hook)

	// A commit's bump failed (as publish does): owed, the bus lost.
	_, owe := l.oweLeased()
	l.lost(errors.New("test: a bump did not reach redis"))
	l.bus.kick()

	f := <-flushes
	if !f.owed {
		t.Error("the resync's flush is about to be sent but no bump is owed any more")
	}
	before := expiry()
	l.lease.mu.Lock()
	bound := l.lease.bound
	l.lease.mu.Unlock()
	if err := l.renew(ctx); err == nil {
		t.Fatal("a renewal succeeded while the flush of an owed bump had not landed")
	}
	if got := expiry(); got != before {
		t.Fatalf("the lease in redis moved from %d to %d while a flush was owed", before, got)
	}
	l.lease.mu.Lock()
	moved := l.lease.bound.After(bound)
	l.lease.mu.Unlock()
	if moved {
		t.Fatal("the lease bound moved while a flush was owed")
	}
	again := l.bus.owe() // owed while the flush is in flight
	close(f.release)

	// The first flush landed and paid the first owe, not the second: the
	// resync starts over and flushes again, still owing.
	f = <-flushes
	if !l.bus.paidFor(owe) || l.bus.paidFor(again) || !f.owed {
		t.Fatalf("after the first flush: paid first owe %v, second %v, owed %v; want true, false, true",
			l.bus.paidFor(owe), l.bus.paidFor(again), f.owed)
	}
	l.bus.beforeFlush.Store(nil)
	close(f.release)
	waitL2(t, a, "up")
	if l.bus.owed() {
		t.Fatal("a bump is still owed after the resync's flush landed")
	}
	waitFor(t, "the lease renewed after the flush", func() bool { return expiry() > before })
}
