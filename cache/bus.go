package cache

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// The invalidation bus: every bump an instance makes goes to Redis and is
// published with a sequence number (bumpScript); every instance
// subscribes and applies the others' bumps to its own Versions, so L1
// validity is decided locally. The sequence lets an instance know it
// missed nothing (a gap is a loss) and lets a hit wait until the bus has
// caught up with Redis (l2.fence). Losing the subscription, a gap, or a
// bump that did not reach Redis flushes L1 and bypasses the cache until
// the bus is resubscribed and resynced (doc.go says why that is enough).

// bus is the subscription's state; the loop (l2.run) owns the
// subscription, requests read the state.
type bus struct {
	mu       sync.Mutex
	st       l2State
	gen      string        // Redis's incarnation at the last resync
	applied  uint64        // every message up to it applied, without a gap, since the resync
	advanced chan struct{} // closed (and replaced) when applied or the state moves
	everUp   bool

	kicks chan struct{}
	// owes counts the bumps that did not reach Redis; paid is the count
	// the last flush that landed was sent after (only resync writes it).
	// A bump is owed while they differ: the next resync flushes every
	// instance. Counting, not a flag: the flush clears only the owes from
	// before it was sent, and only once it landed, so no renewal is sent
	// while a flush is in flight and an owe meanwhile is not lost.
	owes, paid atomic.Uint64
	ps         atomic.Pointer[redis.PubSub]

	// beforeFlush, if set (tests), runs in resync just before its flush
	// is sent.
	beforeFlush atomic.Pointer[func()]
}

func (b *bus) init() {
	b.advanced = make(chan struct{})
	b.kicks = make(chan struct{}, 1)
}

func (b *bus) state() l2State {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.st
}

func (b *bus) position() (uint64, string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.applied, b.gen
}

// kick makes the loop drop its subscription and resync.
func (b *bus) kick() {
	select {
	case b.kicks <- struct{}{}:
	default:
	}
	if ps := b.ps.Load(); ps != nil {
		_ = ps.Close() // wakes the loop's receive
	}
}

// owe records a bump that did not reach Redis and returns its count: the
// owe is paid once paidFor(it).
func (b *bus) owe() uint64 { return b.owes.Add(1) }

// owed: a bump that did not reach Redis is not yet covered by a flush
// that landed. paid is read first: it never passes owes.
func (b *bus) owed() bool {
	p := b.paid.Load()
	return b.owes.Load() != p
}

// paidFor: a flush sent after owe n landed in Redis.
func (b *bus) paidFor(n uint64) bool { return b.paid.Load() >= n }

// setLocked moves the state and wakes waiters; b.mu held.
func (b *bus) setLocked(st l2State, gen string, applied uint64) {
	b.st, b.gen, b.applied = st, gen, applied
	close(b.advanced)
	b.advanced = make(chan struct{})
}

// waitApplied waits until the bus has applied seq of Redis incarnation
// gen, for at most d; false if it did not, or the bus is not up.
func (b *bus) waitApplied(ctx context.Context, gen string, seq uint64, d time.Duration) bool {
	var t *time.Timer
	for {
		b.mu.Lock()
		st, g, a, ch := b.st, b.gen, b.applied, b.advanced
		b.mu.Unlock()
		if st != l2Up || g != gen {
			return false
		}
		if a >= seq {
			return true
		}
		if t == nil {
			t = time.NewTimer(d)
			defer t.Stop()
		}
		select {
		case <-ch:
		case <-t.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// fence makes an L1 hit as fresh as Redis: it reads Redis's sequence (one
// small call, after the request began) and waits until the bus applied
// it, so every invalidation that reached Redis before the request began,
// from any instance, has reached this instance's Versions. false: the
// hit may not be served (Redis unanswering, another incarnation, the
// bus behind for longer than the timeout, or a member's lease lapsed).
func (l *l2) fence(ctx context.Context) bool {
	var res []any
	err := l.call(ctx, l.cfg.Timeout, func(ctx context.Context) (err error) {
		res, err = fenceScript.Run(ctx, l.rdb, []string{l.kSeq, l.kGen, l.kMembers, l.kClock}).Slice()
		return err
	})
	if err != nil || len(res) != 2 {
		return false
	}
	if str(res[0]) == "lapsed" {
		_ = l.leaseCheck(str(res[1]))
		return false
	}
	_ = l.leaseCheck("")
	return l.bus.waitApplied(ctx, str(res[1]), num(res[0]), l.cfg.Timeout)
}

// fenceScript reads seq and gen, or {"lapsed", id} if a member's lease
// lapsed (lease.go).
var fenceScript = redis.NewScript(lapsedLua + `
local gone = lapsed(KEYS[3], KEYS[4])
if gone then return {'lapsed', gone} end
return {redis.call('GET', KEYS[1]) or '0', redis.call('GET', KEYS[2]) or ''}`)

// Run keeps the bus subscribed until ctx ends: subscribe, resync, apply
// messages; on any loss flush and bypass, then start over after a
// backoff (the breaker's cooldown at most).
func (l *l2) run(ctx context.Context) {
	backoff := 10 * time.Millisecond
	for ctx.Err() == nil {
		ps, err := l.resync(ctx)
		if err != nil {
			l.log.Debug("redis resync failed; the cache stays bypassed", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, l.cfg.BreakerCooldown)
			continue
		}
		backoff = 10 * time.Millisecond
		l.log.Info("redis invalidation bus in sync: the cache serves")
		err = l.listen(ctx, ps)
		l.bus.ps.Store(nil)
		_ = ps.Close()
		l.lost(err)
	}
}

// lost ends the bus's sync: L1 is flushed (and every fill in progress
// refused) and the cache bypassed until the next resync.
func (l *l2) lost(reason error) {
	b := &l.bus
	b.mu.Lock()
	wasUp := b.st == l2Up
	b.setLocked(l2Down, "", 0)
	b.mu.Unlock()
	if !wasUp {
		return
	}
	l.c.versions.BumpAll(CauseFlush)
	l.c.store.Clear()
	l.forgetClock()
	if reason == nil {
		return // Close
	}
	l.n.losses.Add(1)
	l.log.Warn("redis invalidation bus lost: the cache is flushed and bypassed until resynced", "err", reason)
}

// pingEvery is how often a quiet subscription is pinged; an unanswered
// ping by the next one is a loss.
const pingEvery = 500 * time.Millisecond

// resync subscribes, then makes Redis and this instance agree: the
// incarnation (gen), a flush of every instance if this one may have
// missed or failed to send a bump (it was up before, or owes one), and
// the sequence from which messages are applied.
func (l *l2) resync(ctx context.Context) (*redis.PubSub, error) {
	select {
	case <-l.bus.kicks: // a kick for the subscription already gone
	default:
	}
	l.n.resyncs.Add(1)
	var ps *redis.PubSub
	var gen string
	var seq uint64
	err := l.call(ctx, syncTimeout, func(ctx context.Context) error {
		ps = l.rdb.Subscribe(ctx, l.channel)
		m, err := ps.ReceiveTimeout(ctx, syncTimeout)
		if err != nil {
			return err
		}
		if _, ok := m.(*redis.Subscription); !ok {
			return fmt.Errorf("cache: redis subscribe answered %T", m)
		}
		if err := l.rdb.SetNX(ctx, l.kGen, randomID(), 0).Err(); err != nil {
			return err
		}
		if gen, err = l.rdb.Get(ctx, l.kGen).Result(); err != nil {
			return err
		}
		l.bus.mu.Lock()
		everUp := l.bus.everUp
		l.bus.mu.Unlock()
		// The owes this flush covers are cleared only once it landed:
		// until then renewOnce sees a bump owed and sends no renewal
		// (were it cleared first, a renewal could land while the flush
		// fails, and a held commit return with its lease still current).
		owes := l.bus.owes.Load()
		if owes != l.bus.paid.Load() || everUp {
			if f := l.bus.beforeFlush.Load(); f != nil {
				(*f)()
			}
			args := []any{l.channel, l.origin, "", string(bumpAll)}
			if err := bumpScript.Run(ctx, l.rdb, []string{l.kVersions, l.kSeq, l.kAll}, args...).Err(); err != nil {
				l.bus.owe()
				return err
			}
			l.bus.paid.Store(owes) // an owe since stays owed
		}
		// Redis lost its data since the last sync: the peers known
		// before count as lapsed until each is back (lease.go).
		if err := l.newIncarnation(ctx, gen); err != nil {
			return err
		}
		// The lease before serving: from now on, if this instance is
		// cut off, the others notice its lease lapse and stop serving.
		if err := l.renew(ctx); err != nil {
			return err
		}
		s, err := l.rdb.Get(ctx, l.kSeq).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		seq = num(s)
		return nil
	})
	if err != nil {
		if ps != nil {
			_ = ps.Close()
		}
		return nil, err
	}
	b := &l.bus
	b.mu.Lock()
	if b.owed() {
		// A bump failed during the resync (publish sets owed before it
		// takes b.mu): it is not in Redis; start over.
		b.mu.Unlock()
		_ = ps.Close()
		return nil, errors.New("cache: a bump failed during the resync")
	}
	b.ps.Store(ps)
	l.synced(gen)
	b.setLocked(l2Up, gen, seq)
	b.everUp = true
	b.mu.Unlock()
	return ps, nil
}

var errPingUnanswered = errors.New("cache: redis subscription did not answer a ping")

// listen applies messages until the subscription fails, misses a
// message, is kicked or ctx ends.
func (l *l2) listen(ctx context.Context, ps *redis.PubSub) error {
	pingOut := false
	for {
		select {
		case <-l.bus.kicks:
			return errors.New("cache: redis bus kicked (breaker opened or a bump failed)")
		default:
		}
		m, err := ps.ReceiveTimeout(ctx, pingEvery)
		if err != nil {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				return err
			}
			if pingOut {
				return errPingUnanswered
			}
			if err := ps.Ping(ctx); err != nil {
				return err
			}
			pingOut = true
			continue
		}
		switch m := m.(type) {
		case *redis.Message:
			if err := l.apply(m.Payload); err != nil {
				return err
			}
		case *redis.Pong:
			pingOut = false
		}
	}
}

var errGap = errors.New("cache: redis bus missed a message")

// apply applies one message: seq, origin, kind, database, tables...,
// separated by NULs (no PostgreSQL name holds one). A message this
// instance sent was applied locally before it was sent.
func (l *l2) apply(payload string) error {
	f := strings.Split(payload, "\x00")
	if len(f) < 5 {
		return fmt.Errorf("cache: redis bus message of %d fields", len(f))
	}
	seq, err := strconv.ParseUint(f[0], 10, 64)
	if err != nil {
		return fmt.Errorf("cache: redis bus message sequence %q", f[0])
	}
	b := &l.bus
	b.mu.Lock()
	applied := b.applied
	b.mu.Unlock()
	switch {
	case seq <= applied:
		return nil // sent before the resync read the sequence
	case seq != applied+1:
		return errGap
	}
	if f[1] != l.origin {
		tables := f[4:]
		if len(tables) == 1 && tables[0] == "" {
			tables = nil
		}
		switch bumpKind(f[2]) {
		case bumpAll:
			l.c.versions.BumpAll(CauseFlush)
		case bumpEpoch:
			l.c.versions.applyRemote(f[3], tables, true)
		default:
			l.c.versions.applyRemote(f[3], tables, false)
		}
	}
	b.mu.Lock()
	if b.st == l2Up && b.applied == applied {
		b.setLocked(l2Up, b.gen, seq)
	}
	b.mu.Unlock()
	return nil
}

// applyRemote is Bump (or BumpEpoch) for another instance's commit, told
// by the bus: not published again. Its commit LSN is not known here, so
// replicas are not trusted with its tables until ResolveUnknownLSN.
func (v *Versions) applyRemote(db string, tables []string, epoch bool) {
	d := v.db(db, true)
	d.mu.Lock()
	for _, name := range tables {
		t := d.table(name)
		t.version++
		t.lsn.record(v, UnknownLSN)
	}
	if epoch {
		d.epoch++
		d.lsn.record(v, UnknownLSN)
	}
	d.mu.Unlock()
	v.told(CauseWrite, len(tables))
	if epoch {
		v.told(CauseEpoch, 1)
	}
}
