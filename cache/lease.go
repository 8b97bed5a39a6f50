package cache

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Membership leases: what closes the partial partition. An instance cut
// off from Redis while the others are not cannot tell them of its
// commits; they would serve entries its writes made stale. So every
// instance holds a lease in Redis (the members hash: instance id ->
// expiry in Redis's clock), renewed every lease/4 while it owes no bump;
// every hit's fence and every L2 lookup checks, in the same script, that
// no member's lease has lapsed, and bypasses the cache if one has. A
// commit whose bump did not reach Redis holds its reply until a retry of
// the bump lands or every lease it may still hold has ended
// (leaseState.bound): from then on no instance serves, until it is back
// (its resync flushes every instance) or it is removed as dead.
//
// A member whose lease lapsed member_timeout ago is removed by the next
// instance to renew, and that removal flushes every instance: a pgone
// that died between a commit and its bump is covered. If Redis loses its
// data (restarted empty: a new incarnation), the members go with it; each
// instance then enters the peers it knew as lapsed before it serves
// again. Redis's clock is trusted only while it is not behind the latest
// time a renewal saw (the clock key). An instance cut off for longer than
// member_timeout that still takes writes is not covered: once removed,
// the others serve again while its later commits cannot reach them (with
// cache.invalidation: logical, every instance's own stream sees those
// commits). Neither is an instance that never reached Redis since it
// started: nobody knows it is there.

// leaseState is this instance's side of its lease.
type leaseState struct {
	mu sync.Mutex
	// bound: every renewal this instance sent takes effect in Redis, if
	// at all, early enough that the lease it set has ended by then (local
	// monotonic clock).
	bound time.Time
	// redisNow is Redis's clock (ms) in the last renewal's (or TIME's)
	// reply, read locally at replyAt: a renewal sent at t is refused by
	// Redis if it arrives after redisNow + (t - replyAt) + renewTimeout, so
	// a request delayed in the network cannot extend the lease unseen.
	redisNow int64
	replyAt  time.Time
	known    bool
	// peers are the other members at the last renewal; gen is Redis's
	// incarnation at the last resync (newIncarnation).
	peers map[string]struct{}
	gen   string

	lapsed atomic.Bool // the last fence or lookup found a lapsed member
}

// lapsedLua is the check every fence and lookup script makes: a member of
// the hash k whose lease (expiry, Redis ms) has passed; or "~clock" if
// Redis's clock is behind the latest time a renewal saw (ck): a clock
// stepped back would make every lease last longer than its holder counts
// on, so nothing is trusted until it has caught up.
const lapsedLua = `
local function lapsed(k, ck)
  local m = redis.call('HGETALL', k)
  if #m == 0 then return false end
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  if now < tonumber(redis.call('GET', ck) or '0') then return '~clock' end
  for i = 2, #m, 2 do
    if tonumber(m[i]) < now then return m[i - 1] end
  end
  return false
end
`

// renewScript sets this instance's lease (KEYS: members, all, seq, clock,
// gen; ARGV: id, lease ms, member timeout ms, not-after ms in Redis's
// clock, the channel) and removes the members dead for longer than the
// member timeout. A removal flushes every instance in the same atomic
// step (as bumpScript's "a", from no instance, so every instance applies
// it): no hit can come between the removal and the flush. It refuses when
// Redis's clock is behind the clock key (stepped back). Returns {now,
// removed, gen, the members' ids...}; removed -1: refused (late, or the
// clock), and nothing more.
var renewScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now > tonumber(ARGV[4]) then return {now, -1} end
if now < tonumber(redis.call('GET', KEYS[4]) or '0') then return {now, -1} end
redis.call('SET', KEYS[4], now)
redis.call('HSET', KEYS[1], ARGV[1], now + tonumber(ARGV[2]))
local m = redis.call('HGETALL', KEYS[1])
local r = {now, 0, redis.call('GET', KEYS[5]) or ''}
for i = 1, #m, 2 do
  if tonumber(m[i + 1]) < now - tonumber(ARGV[3]) then
    redis.call('HDEL', KEYS[1], m[i])
    r[2] = r[2] + 1
  else
    r[#r + 1] = m[i]
  end
end
if r[2] > 0 then
  redis.call('INCR', KEYS[2])
  local s = redis.call('INCR', KEYS[3])
  redis.call('PUBLISH', ARGV[5], s .. '\0' .. '~lease' .. '\0' .. 'a' .. '\0' .. '' .. '\0' .. '')
end
return r`)

// markLapsedScript enters each id in ARGV as a member whose lease has
// just ended, unless it is a member already (KEYS: members): after Redis
// lost its data (a new incarnation), the peers this instance knew may be
// cut off with commits nobody heard of; every instance bypasses until
// each is back or removed (with a flush) after the member timeout.
var markLapsedScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 1, #ARGV do redis.call('HSETNX', KEYS[1], ARGV[i], now - 1) end
return #ARGV`)

// errLapsed: a member's lease has lapsed; the cache is bypassed.
var errLapsed = errors.New("cache: a pgone instance's lease in redis has lapsed")

// renewTimeout bounds a renewal; it also lengthens how long a commit
// whose bump failed waits (bound).
func (l *l2) renewTimeout() time.Duration { return max(l.cfg.Lease/8, 10*time.Millisecond) }

// renew renews this instance's lease (and removes dead members, which
// flushes every instance). A renewal refused as late (its reply, or the
// one before, was slow to reach this process) is retried once at once,
// with the clock just read.
func (l *l2) renew(ctx context.Context) error {
	err := l.renewOnce(ctx)
	if errors.Is(err, errRenewLate) {
		err = l.renewOnce(ctx)
	}
	return err
}

var (
	errRenewLate  = errors.New("cache: redis lease renewal arrived too late and was refused")
	errLeaseShape = errors.New("cache: redis lease renewal answered an unexpected shape")
)

// renewOnce sends one renewal. It refuses while a bump is owed: the resync's
// flush must come first. It does not go through the breaker: the lease
// says this instance can publish, which publish also tries past it.
func (l *l2) renewOnce(ctx context.Context) error {
	ls := &l.lease
	d := l.renewTimeout()
	if !l.leaseClockKnown() {
		ctx, cancel := context.WithTimeout(ctx, d)
		now, err := l.rdb.Time(ctx).Result()
		cancel()
		if err != nil {
			return err
		}
		ls.mu.Lock()
		ls.redisNow, ls.replyAt, ls.known = now.UnixMilli(), time.Now(), true
		ls.mu.Unlock()
	}
	ls.mu.Lock()
	if l.bus.owed() {
		ls.mu.Unlock()
		return errors.New("cache: a bump is owed; the lease waits for the resync")
	}
	sent := time.Now()
	notAfter := ls.redisNow + sent.Sub(ls.replyAt).Milliseconds() + d.Milliseconds()
	if b := sent.Add(d + l.cfg.Lease); b.After(ls.bound) {
		ls.bound = b
	}
	ls.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, d)
	res, err := renewScript.Run(ctx, l.rdb, []string{l.kMembers, l.kAll, l.kSeq, l.kClock, l.kGen}, l.origin,
		l.cfg.Lease.Milliseconds(), l.cfg.MemberTimeout.Milliseconds(), notAfter, l.channel).Slice()
	cancel()
	if err != nil {
		return err
	}
	if len(res) < 2 {
		return errLeaseShape
	}
	now, ok1 := res[0].(int64)
	removed, ok2 := res[1].(int64)
	if !ok1 || !ok2 || (removed >= 0 && len(res) < 3) {
		return errLeaseShape
	}
	ls.mu.Lock()
	ls.redisNow, ls.replyAt = now, time.Now()
	// The peers are remembered only from the incarnation this instance
	// synced with: a renewal racing ahead of the resync after Redis lost
	// its data must not make it forget the peers newIncarnation enters.
	if removed >= 0 && str(res[2]) != "" && str(res[2]) == ls.gen {
		clear(ls.peers)
		for _, id := range res[3:] {
			if id, ok := id.(string); ok && id != l.origin {
				ls.peers[id] = struct{}{}
			}
		}
	}
	ls.mu.Unlock()
	switch {
	case removed < 0:
		return errRenewLate
	case removed > 0:
		l.log.Warn("removed pgone instances whose cache lease lapsed long ago; every instance's cache is flushed",
			"removed", removed, "member_timeout", l.cfg.MemberTimeout)
	}
	return nil
}

// newIncarnation is resync's step when Redis's incarnation (gen) is not
// the one this instance last synced with: Redis lost its data, members
// included. The peers this instance knew are entered as lapsed (markLapsedScript).
func (l *l2) newIncarnation(ctx context.Context, gen string) error {
	ls := &l.lease
	ls.mu.Lock()
	last := ls.gen
	peers := make([]any, 0, len(ls.peers))
	for id := range ls.peers {
		peers = append(peers, id)
	}
	ls.mu.Unlock()
	if last == "" || last == gen || len(peers) == 0 {
		return nil
	}
	l.log.Warn("redis lost its data: the pgone instances known before count as lapsed until each is back",
		"instances", len(peers), "member_timeout", l.cfg.MemberTimeout)
	return markLapsedScript.Run(ctx, l.rdb, []string{l.kMembers}, peers...).Err()
}

// synced records the incarnation a resync completed with.
func (l *l2) synced(gen string) {
	l.lease.mu.Lock()
	l.lease.gen = gen
	l.lease.mu.Unlock()
}

// forgetClock makes the next renewal read Redis's clock afresh (after a
// loss: Redis may now run on another host, with another clock).
func (l *l2) forgetClock() {
	l.lease.mu.Lock()
	l.lease.known = false
	l.lease.mu.Unlock()
}

func (l *l2) leaseClockKnown() bool {
	l.lease.mu.Lock()
	defer l.lease.mu.Unlock()
	return l.lease.known
}

// renewLoop renews the lease every lease/4; a renewal that fails is
// retried at the next tick (the lease outlives three failures).
func (l *l2) renewLoop(ctx context.Context) {
	t := time.NewTicker(l.cfg.Lease / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// Renewed whenever no bump is owed (renewOnce checks), also while
		// the bus is resyncing: the lease says this instance can publish.
		if err := l.renew(ctx); err != nil {
			l.log.Debug("redis lease renewal failed", "err", err)
		}
	}
}

// oweLeased marks a bump owed and returns when every lease this instance
// may hold has ended, and the owe's count: no renewal is sent after it
// (renew checks owed under the same lock, and resync clears an owe only
// once its flush landed), so from then on no instance serves until the
// resync's flush.
func (l *l2) oweLeased() (time.Time, uint64) {
	ls := &l.lease
	ls.mu.Lock()
	defer ls.mu.Unlock()
	owe := l.bus.owe()
	return ls.bound, owe
}

// holdUntilLeaseEnd holds a commit whose bump did not reach Redis until
// bound (oweLeased), plus a margin for Redis's clock running a little
// faster, or until the bump, tried again every holdRetry, reaches Redis,
// or a resync's flush sent after the owe landed: then every instance's
// fence and lookup count it, as for any published bump. A slow Redis (a
// fork, an fsync) so costs a commit the spike, not the whole lease.
func (l *l2) holdUntilLeaseEnd(bound time.Time, owe uint64, keys []string, args []any) {
	if bound.IsZero() {
		return
	}
	end := l.holdEnd(bound)
	if !time.Now().Before(end) {
		return
	}
	l.n.leaseWaits.Add(1)
	l.log.Warn("a commit's cache invalidation did not reach redis: its reply waits until it does or this instance's lease has ended",
		"at_most", time.Until(end).Round(time.Millisecond))
	for {
		wait := time.Until(end)
		if wait <= 0 {
			// bound cannot have moved while the owe is unpaid (no renewal
			// is sent then); if it did, the lease in Redis may outlive
			// bound: hold on to the new bound rather than return early.
			moved, ok := l.boundMovedUnpaid(bound, owe)
			if !ok {
				return
			}
			l.log.Error("bug: this instance's cache lease was renewed while a flush was owed; the held commit waits for the new lease end",
				"extra", moved.Sub(bound).Round(time.Millisecond))
			bound, end = moved, l.holdEnd(moved)
			continue
		}
		time.Sleep(min(wait, holdRetry))
		if l.bus.paidFor(owe) {
			return
		}
		if time.Now().Before(end) && l.tryBump(keys, args) == nil {
			return
		}
	}
}

// holdEnd is how long a held commit waits for a lease bound: plus a
// margin for Redis's clock running a little faster.
func (l *l2) holdEnd(bound time.Time) time.Time {
	return bound.Add(l.cfg.Lease/100 + 10*time.Millisecond)
}

// boundMovedUnpaid returns the lease bound if it moved past bound while
// owe is still unpaid (an invariant broken: renewOnce sends nothing while
// a bump is owed).
func (l *l2) boundMovedUnpaid(bound time.Time, owe uint64) (time.Time, bool) {
	ls := &l.lease
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.bound.After(bound) && !l.bus.paidFor(owe) {
		return ls.bound, true
	}
	return time.Time{}, false
}

// holdRetry is how often a held commit tries its bump again.
const holdRetry = 25 * time.Millisecond

// leaseCheck reads what a fence or lookup script said of the members:
// lapsed is the id of a member whose lease lapsed, or "".
func (l *l2) leaseCheck(lapsed string) error {
	ls := &l.lease
	if lapsed == "" {
		if ls.lapsed.Load() && ls.lapsed.Swap(false) { // a load first: no write on every hit
			l.log.Info("every pgone instance's cache lease is current again: the cache serves")
		}
		return nil
	}
	l.n.lapsed.Add(1)
	if !ls.lapsed.Swap(true) {
		l.log.Warn("a pgone instance's cache lease lapsed (cut off from redis, or gone): the cache is bypassed until it is back or removed",
			"instance", lapsed, "member_timeout", l.cfg.MemberTimeout)
	}
	return errLapsed
}

// leave removes this instance's lease at Close, unless a bump is owed
// (then the lapsed lease keeps the others bypassing until it is removed
// and everything flushed).
func (l *l2) leave() {
	ls := &l.lease
	ls.mu.Lock()
	owed := l.bus.owed()
	ls.mu.Unlock()
	if owed {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.renewTimeout())
	defer cancel()
	_ = l.rdb.HDel(ctx, l.kMembers, l.origin).Err()
}
