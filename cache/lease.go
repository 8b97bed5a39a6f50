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
// expiry in Redis's clock), renewed every lease/4 while its bus is in
// sync; every hit's fence and every L2 lookup checks, in the same script,
// that no member's lease has lapsed, and bypasses the cache if one has.
// An instance whose commit's bump did not reach Redis holds that commit's
// reply until every lease it may still hold has ended (leaseState.bound):
// from then on no instance serves, until it is back (its resync flushes
// every instance) or it is removed as dead.
//
// A member whose lease lapsed member_timeout ago is removed by the next
// instance to renew, and that removal flushes every instance: a pgone
// that died between a commit and its bump is covered. An instance cut off
// for longer than member_timeout that still takes writes is not: once
// removed, the others serve again while its later commits cannot reach
// them (with cache.invalidation: logical, every instance's own stream
// sees those commits). Neither is an instance that never reached Redis
// since it started: nobody knows it is there.

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

	lapsed atomic.Bool // the last fence or lookup found a lapsed member
}

// lapsedLua is the check every fence and lookup script makes: a member of
// the hash in KEYS[n] whose lease (expiry, Redis ms) has passed.
const lapsedLua = `
local function lapsed(k)
  local m = redis.call('HGETALL', k)
  if #m == 0 then return false end
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  for i = 2, #m, 2 do
    if tonumber(m[i]) < now then return m[i - 1] end
  end
  return false
end
`

// renewScript sets this instance's lease (KEYS: members, all, seq; ARGV:
// id, lease ms, member timeout ms, not-after ms in Redis's clock, the
// channel) and removes the members dead for longer than the member
// timeout. A removal flushes every instance in the same atomic step (as
// bumpScript's "a", from no instance, so every instance applies it): no
// hit can come between the removal and the flush. Returns {now, removed};
// removed -1: the renewal came too late and was refused.
var renewScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now > tonumber(ARGV[4]) then return {now, -1} end
redis.call('HSET', KEYS[1], ARGV[1], now + tonumber(ARGV[2]))
local m = redis.call('HGETALL', KEYS[1])
local dead = 0
for i = 1, #m, 2 do
  if tonumber(m[i + 1]) < now - tonumber(ARGV[3]) then
    redis.call('HDEL', KEYS[1], m[i])
    dead = dead + 1
  end
end
if dead > 0 then
  redis.call('INCR', KEYS[2])
  local s = redis.call('INCR', KEYS[3])
  redis.call('PUBLISH', ARGV[5], s .. '\0' .. '~lease' .. '\0' .. 'a' .. '\0' .. '' .. '\0' .. '')
end
return {now, dead}`)

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

var errRenewLate = errors.New("cache: redis lease renewal arrived too late and was refused")

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
	if l.bus.owed.Load() {
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
	res, err := renewScript.Run(ctx, l.rdb, []string{l.kMembers, l.kAll, l.kSeq}, l.origin,
		l.cfg.Lease.Milliseconds(), l.cfg.MemberTimeout.Milliseconds(), notAfter, l.channel).Int64Slice()
	cancel()
	if err != nil {
		return err
	}
	if len(res) != 2 {
		return errors.New("cache: redis lease renewal answered an unexpected shape")
	}
	ls.mu.Lock()
	ls.redisNow, ls.replyAt = res[0], time.Now()
	ls.mu.Unlock()
	switch {
	case res[1] < 0:
		return errRenewLate
	case res[1] > 0:
		l.log.Warn("removed pgone instances whose cache lease lapsed long ago; every instance's cache is flushed",
			"removed", res[1], "member_timeout", l.cfg.MemberTimeout)
	}
	return nil
}

func (l *l2) leaseClockKnown() bool {
	l.lease.mu.Lock()
	defer l.lease.mu.Unlock()
	return l.lease.known
}

// renewLoop renews the lease every lease/4 while the bus is in sync; a
// renewal that fails is retried at the next tick (the lease outlives
// three failures).
func (l *l2) renewLoop(ctx context.Context) {
	t := time.NewTicker(l.cfg.Lease / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if l.bus.state() != l2Up {
			continue
		}
		if err := l.renew(ctx); err != nil {
			l.log.Debug("redis lease renewal failed", "err", err)
		}
	}
}

// oweLeased marks a bump owed and returns when every lease this instance
// may hold has ended: no renewal is sent after it (renew checks owed
// under the same lock), so from then on no instance serves until the
// resync's flush.
func (l *l2) oweLeased() time.Time {
	ls := &l.lease
	ls.mu.Lock()
	defer ls.mu.Unlock()
	l.bus.owe()
	return ls.bound
}

// waitLeaseEnd holds a commit whose bump did not reach Redis until bound
// (oweLeased), plus a margin for Redis's clock running a little faster.
func (l *l2) waitLeaseEnd(bound time.Time) {
	if bound.IsZero() {
		return
	}
	wait := time.Until(bound) + l.cfg.Lease/100 + 10*time.Millisecond
	if wait <= 0 {
		return
	}
	l.n.leaseWaits.Add(1)
	l.log.Warn("a commit's cache invalidation did not reach redis: its reply waits until this instance's lease has ended",
		"wait", wait.Round(time.Millisecond))
	time.Sleep(wait)
}

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
	owed := l.bus.owed.Load()
	ls.mu.Unlock()
	if owed {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.renewTimeout())
	defer cancel()
	_ = l.rdb.HDel(ctx, l.kMembers, l.origin).Err()
}
