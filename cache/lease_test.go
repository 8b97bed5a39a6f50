package cache

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pgone/pgone/internal/pgtest"
)

// leasedCache is sharedCache with a short lease and member timeout.
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
	return c
}

// waitMembers waits until Redis's members hash has n instances.
func waitMembers(t *testing.T, rdb *redis.Client, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, err := rdb.HLen(context.Background(), "pgone:m").Result()
		if err == nil && int(got) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d members in redis after 20s (err %v), want %d", got, err, n)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, not a delay
	}
}

// waitHit waits until k is a hit on c (the cache serves again).
func waitHit(t *testing.T, c *Cache, k Key, reply string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if got, ok := lookupHit(c, k); ok {
			if string(got) != reply {
				t.Fatalf("hit %q, want %q", got, reply)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no hit of %s after 20s", k)
		}
		// A miss: fill it (refused while bypassing) and look again.
		if _, f := c.Lookup(context.Background(), k, "db", []string{"t"}); f != nil {
			f.Store([]byte(reply), time.Minute, Origin{})
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, not a delay
	}
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
	waitL2(t, a, "up")
	waitL2(t, b, "up")
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
	waitL2(t, b, "up")
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
	waitL2(t, a, "up")
	waitL2(t, b, "up")
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
	keys := []string{"pgone:m", "pgone:all", "pgone:seq"}
	res, err := renewScript.Run(ctx, rdb, keys, "late", 1000, 30000, now.UnixMilli()-1, "pgone:inval").Int64Slice()
	if err != nil || len(res) != 2 || res[1] != -1 {
		t.Fatalf("late renewal answered %v, %v; want refused (-1)", res, err)
	}
	if n, _ := rdb.HLen(ctx, "pgone:m").Result(); n != 0 {
		t.Fatalf("a refused renewal left %d members", n)
	}
	res, err = renewScript.Run(ctx, rdb, keys, "timely", 1000, 30000, now.UnixMilli()+60000, "pgone:inval").Int64Slice()
	if err != nil || len(res) != 2 || res[1] != 0 {
		t.Fatalf("timely renewal answered %v, %v; want set, none removed", res, err)
	}
	if end, _ := rdb.HGet(ctx, "pgone:m", "timely").Int64(); end < now.UnixMilli()+1000 {
		t.Fatalf("lease ends at %d, want at least %d", end, now.UnixMilli()+1000)
	}
}
