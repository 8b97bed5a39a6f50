package cache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// l2 is the shared part of the cache in Redis: the entries (L2), the
// table versions every instance bumps, and the invalidation bus (bus.go).
// It belongs to one Cache; safe for concurrent use.
//
// Keys, each starting with the configured prefix:
//
//	e:<key hex>  an entry (redis_codec.go), with the entry's TTL
//	v:<db>       hash: "t:<table>" -> version, "~e" -> the database's epoch
//	all          flush counter (CACHE FLUSH of everything, a resync)
//	seq          invalidation sequence: one per message on the channel
//	gen          Redis's incarnation, set once by the first instance to sync
//	inval        the channel invalidations are published on
//	m            hash: instance id -> its lease's end, Redis ms (lease.go)
//	clock        the latest Redis time a lease renewal saw (lease.go)
type l2 struct {
	cfg    Redis
	c      *Cache
	rdb    *redis.Client
	br     *Breaker
	origin string // this instance, in its messages
	log    *slog.Logger

	kEntry, kVersions, kAll, kSeq, kGen, kMembers, kClock, channel string

	bus   bus
	lease leaseState
	n     l2Counters

	stop context.CancelFunc // ends run; nil until Start
	done chan struct{}      // closed when run returned
}

// l2Counters are the L2's counts for SHOW CACHE and metrics.
type l2Counters struct {
	hits, misses, fills, refused atomic.Int64
	errors, bypassed             atomic.Int64
	resyncs, losses              atomic.Int64
	lapsed, leaseWaits           atomic.Int64
}

func newL2(cfg Redis, c *Cache) *l2 {
	p := cfg.Prefix
	l := &l2{cfg: cfg, c: c, origin: randomID(),
		kEntry: p + "e:", kVersions: p + "v:", kAll: p + "all", kSeq: p + "seq", kGen: p + "gen", kMembers: p + "m", kClock: p + "clock", channel: p + "inval",
		br:  NewBreaker(cfg.BreakerFailures, cfg.BreakerCooldown, nil),
		log: slog.New(slog.DiscardHandler),
	}
	l.rdb = redis.NewClient(&redis.Options{
		Addr: cfg.Address, Password: cfg.Password, DB: cfg.DB,
		// Every call carries its own deadline (Timeout); the pool keeps
		// connections ready so that a call rarely pays for a dial.
		ContextTimeoutEnabled: true,
		DialTimeout:           syncTimeout,
		ReadTimeout:           syncTimeout,
		WriteTimeout:          syncTimeout,
		MaxRetries:            -1, // a retry would outlive the request's bound
		MinIdleConns:          2,
		DisableIdentity:       true,
		Protocol:              2,
	})
	l.bus.init()
	l.lease.peers = map[string]struct{}{}
	return l
}

// syncTimeout bounds calls off the request path: dials, the bus's
// subscribe and resync.
const syncTimeout = time.Second

func randomID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// errBreakerOpen is a call refused by the open breaker.
var errBreakerOpen = errors.New("cache: redis circuit breaker open")

// call runs f with a deadline d through the breaker. redis.Nil (no such
// key) is an answer, not a failure. Errors are counted here; the caller
// only decides what to do without Redis.
func (l *l2) call(ctx context.Context, d time.Duration, f func(ctx context.Context) error) error {
	if !l.br.Allow() {
		return errBreakerOpen
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	err := f(ctx)
	cancel()
	if err != nil && !errors.Is(err, redis.Nil) {
		l.n.errors.Add(1)
		if l.br.Failure() {
			l.log.Warn("redis circuit breaker opened: the cache is bypassed", "err", err)
			l.bus.kick() // resync once it closes
		}
		return err
	}
	l.br.Success()
	return nil
}

func (l *l2) entryKey(k Key) string { return l.kEntry + k.String() }

// lookupScript reads an entry with its remaining life and, in the same
// atomic step, what Redis holds for its validity: gen, all, the epoch and
// the versions of the tables (fields in ARGV). If a member's lease
// lapsed (KEYS[5], KEYS[6]: lease.go) it answers {"lapsed", id} instead.
var lookupScript = redis.NewScript(lapsedLua + `
local gone = lapsed(KEYS[5], KEYS[6])
if gone then return {'lapsed', gone} end
local r = {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1]),
  redis.call('GET', KEYS[3]) or '', redis.call('GET', KEYS[4]) or '0'}
local f = {'~e'}
for i = 1, #ARGV do f[#f + 1] = ARGV[i] end
local v = redis.call('HMGET', KEYS[2], unpack(f))
for i = 1, #v do r[#r + 1] = v[i] or '0' end
return r`)

// lookup returns k's L2 entry (nil if none or unreadable), its remaining
// life, and what Redis holds now for the tables of db (sorted, as in the
// local token).
func (l *l2) lookup(ctx context.Context, k Key, db string, tables []TableVersion) (*remoteEntry, time.Duration, remoteToken, error) {
	fields := make([]any, len(tables))
	for i, t := range tables {
		fields[i] = "t:" + t.Table
	}
	var res []any
	err := l.call(ctx, l.cfg.Timeout, func(ctx context.Context) (err error) {
		res, err = lookupScript.Run(ctx, l.rdb, []string{l.entryKey(k), l.kVersions + db, l.kGen, l.kAll, l.kMembers, l.kClock}, fields...).Slice()
		return err
	})
	if err != nil {
		return nil, 0, remoteToken{}, err
	}
	if len(res) == 2 && str(res[0]) == "lapsed" {
		return nil, 0, remoteToken{}, l.leaseCheck(str(res[1]))
	}
	_ = l.leaseCheck("")
	if len(res) != 5+len(tables) {
		return nil, 0, remoteToken{}, errors.New("cache: redis lookup answered an unexpected shape")
	}
	rt := remoteToken{gen: str(res[2]), all: num(res[3]), epoch: num(res[4]), versions: make([]uint64, len(tables))}
	for i := range tables {
		rt.versions[i] = num(res[5+i])
	}
	var e *remoteEntry
	if s, ok := res[0].(string); ok {
		e, _ = decodeRemote([]byte(s)) // another format: a miss, overwritten by the fill
	}
	pttl := time.Duration(num(res[1])) * time.Millisecond
	return e, pttl, rt, nil
}

// storeScript stores an entry only if Redis still holds what its read's
// token recorded: gen, all, the epoch and each table's version (ARGV from
// 6 on: field, version pairs). Atomic, so no bump can fall between the
// check and the store.
var storeScript = redis.NewScript(`
if ARGV[1] == '' or redis.call('GET', KEYS[3]) ~= ARGV[1] then return 0 end
if (redis.call('GET', KEYS[4]) or '0') ~= ARGV[2] then return 0 end
if (redis.call('HGET', KEYS[2], '~e') or '0') ~= ARGV[3] then return 0 end
for i = 6, #ARGV, 2 do
  if (redis.call('HGET', KEYS[2], ARGV[i]) or '0') ~= ARGV[i + 1] then return 0 end
end
redis.call('SET', KEYS[1], ARGV[5], 'PX', ARGV[4])
return 1`)

// storeIf stores reply under k in L2 if nothing it read moved in Redis
// since rt was read. stored false without an error: something moved.
func (l *l2) storeIf(ctx context.Context, k Key, db string, tables []TableVersion, rt *remoteToken, ttl time.Duration, reply []byte) (stored bool, err error) {
	args := make([]any, 0, 5+2*len(tables))
	args = append(args, rt.gen, strconv.FormatUint(rt.all, 10), strconv.FormatUint(rt.epoch, 10),
		max(ttl.Milliseconds(), 1), encodeRemote(db, tables, rt, ttl, reply))
	for i, t := range tables {
		args = append(args, "t:"+t.Table, strconv.FormatUint(rt.versions[i], 10))
	}
	var n int64
	err = l.call(ctx, l.cfg.Timeout, func(ctx context.Context) (err error) {
		n, err = storeScript.Run(ctx, l.rdb, []string{l.entryKey(k), l.kVersions + db, l.kGen, l.kAll}, args...).Int64()
		return err
	})
	return n == 1, err
}

// bumpScript bumps versions and publishes the invalidation with the next
// sequence number, in one atomic step: an instance that sees a message
// with seq s has seen every bump before it. ARGV: channel, origin, db,
// kind ("a" flush all, "e" epoch, "t" tables only), tables...
var bumpScript = redis.NewScript(`
if ARGV[4] == 'a' then redis.call('INCR', KEYS[3]) end
if ARGV[4] == 'e' then redis.call('HINCRBY', KEYS[1], '~e', 1) end
local t = {}
for i = 5, #ARGV do
  redis.call('HINCRBY', KEYS[1], 't:' .. ARGV[i], 1)
  t[#t + 1] = ARGV[i]
end
local s = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[1], s .. '\0' .. ARGV[2] .. '\0' .. ARGV[4] .. '\0' .. ARGV[3] .. '\0' .. table.concat(t, '\0'))
return s`)

// bumpKind is what an invalidation bumps besides its tables.
type bumpKind string

const (
	bumpTables bumpKind = "t"
	bumpEpoch  bumpKind = "e"
	bumpAll    bumpKind = "a"
)

// publish bumps in Redis what a commit (or flush) is about to bump
// locally and tells every instance. It runs before the commit is known
// to its client, so it tries hard: past the breaker (an instance whose
// breaker is open may be the only one not reaching Redis, while others
// serve), and again on a fresh connection after a failure (a pooled
// connection may be dead after a Redis restart), within 4x the timeout.
// If it still fails the bump is owed: this instance stops serving now,
// and its resync flushes every instance. Other instances may still serve
// what it made stale until this instance's lease ends: publish returns
// hold, which a commit's caller runs before its reply (lease.go).
func (l *l2) publish(db string, tables []string, kind bumpKind) (hold func()) {
	args := make([]any, 0, 4+len(tables))
	args = append(args, l.channel, l.origin, db, string(kind))
	for _, t := range tables {
		args = append(args, t)
	}
	keys := []string{l.kVersions + db, l.kSeq, l.kAll}
	err := l.tryBump(keys, args)
	if err == nil {
		l.br.Success()
		return nil
	}
	if l.br.Failure() {
		l.log.Warn("redis circuit breaker opened: the cache is bypassed", "err", err)
	}
	// Until the bump is in Redis, L2 entries it made stale look valid:
	// stop serving now; the resync flushes every instance.
	bound, owe := l.oweLeased()
	l.lost(err)
	l.bus.kick()
	return func() { l.holdUntilLeaseEnd(bound, owe, keys, args) }
}

// tryBump runs bumpScript within 4x the timeout, on fresh connections
// after failures; it gives up at once when Redis refuses the dial.
func (l *l2) tryBump(keys []string, args []any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 4*l.cfg.Timeout)
	defer cancel()
	var err error
	for attempt := 0; attempt < maxPublishAttempts && ctx.Err() == nil; attempt++ {
		if err = bumpScript.Run(ctx, l.rdb, keys, args...).Err(); err == nil {
			return nil
		}
		l.n.errors.Add(1)
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			break // Redis is not there: no other connection will do better
		}
	}
	return err
}

// maxPublishAttempts bounds publish's tries: enough to go through every
// dead connection of the pool after a Redis restart (each fails at once)
// and dial a new one.
const maxPublishAttempts = 64

// published is Versions' onBump: a bump made here goes to Redis.
func (l *l2) published(db string, tables []string, epoch bool) (hold func()) {
	kind := bumpTables
	if epoch {
		kind = bumpEpoch
	}
	return l.publish(db, tables, kind)
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// num reads a Redis integer or decimal string; anything else is 0.
func num(v any) uint64 {
	switch x := v.(type) {
	case int64:
		if x > 0 {
			return uint64(x)
		}
	case string:
		n, _ := strconv.ParseUint(strings.TrimSpace(x), 10, 64)
		return n
	}
	return 0
}

// l2State is the L2 as SHOW CACHE tells it.
type l2State uint8

const (
	// l2Down: no subscription; the cache is bypassed.
	l2Down l2State = iota
	// l2Up: subscribed and resynced; the cache serves.
	l2Up
)

// L2Stats is the shared store's state for SHOW CACHE and metrics.
type L2Stats struct {
	// State: "up" (subscribed, in sync: the cache serves), "bypassing"
	// (subscribed but the breaker is open) or "down" (not subscribed:
	// the cache is bypassed until resynced).
	State   string
	Breaker BreakerState
	Hits    int64 // L1 misses answered from L2
	Misses  int64 // L1 misses that L2 did not answer
	Fills   int64 // entries stored in L2
	Refused int64 // fills Redis refused: versions moved
	Errors  int64 // failed Redis calls (error or timeout)
	// Bypassed: requests sent to PostgreSQL without a lookup or fill
	// because the L2 was down or its breaker open.
	Bypassed        int64
	Resyncs, Losses int64
	AppliedSequence uint64
	// Lapsed: fences and lookups refused because an instance's lease had
	// lapsed; LeaseWaits: commits held until this instance's lease ended
	// (their invalidation did not reach Redis). lease.go says why.
	Lapsed, LeaseWaits int64
}

// L2Stats is the L2's state; ok false when no Redis is configured.
func (c *Cache) L2Stats() (s L2Stats, ok bool) {
	l := c.l2
	if l == nil {
		return s, false
	}
	s = L2Stats{Breaker: l.br.State(), Hits: l.n.hits.Load(), Misses: l.n.misses.Load(),
		Fills: l.n.fills.Load(), Refused: l.n.refused.Load(), Errors: l.n.errors.Load(),
		Bypassed: l.n.bypassed.Load(), Resyncs: l.n.resyncs.Load(), Losses: l.n.losses.Load(),
		Lapsed: l.n.lapsed.Load(), LeaseWaits: l.n.leaseWaits.Load()}
	s.AppliedSequence, _ = l.bus.position()
	switch {
	case l.bus.state() != l2Up:
		s.State = "down"
	case s.Breaker == BreakerOpen:
		s.State = "bypassing"
	default:
		s.State = "up"
	}
	return s, true
}

// usable says the cache may serve and fill: subscribed, in sync and the
// breaker not open.
func (l *l2) usable() bool { return l.bus.state() == l2Up && l.br.State() != BreakerOpen }
