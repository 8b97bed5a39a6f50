package cache

import (
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"time"
)

// Mode is what the cache caches.
type Mode string

// Cache modes. Auto is filled by the tuner later; until then it behaves as
// rules.
const (
	ModeOff   Mode = "off"
	ModeRules Mode = "rules"
	ModeAuto  Mode = "auto"
)

// Validate reports whether m is a known mode.
func (m Mode) Validate() error {
	switch m {
	case ModeOff, ModeRules, ModeAuto:
		return nil
	}
	return fmt.Errorf("must be off, rules or auto, got %q", string(m))
}

// Config is the cache section of pgone's configuration.
type Config struct {
	// Mode is off (the default: nothing is cached), rules or auto. A
	// database entry's cache_mode overrides it for that database.
	Mode Mode `yaml:"mode"`
	// MaxBytes bounds the bytes the in-process store holds.
	MaxBytes int64 `yaml:"max_bytes"`
	// MaxEntryBytes refuses results larger than this.
	MaxEntryBytes int64 `yaml:"max_entry_bytes"`
	// DefaultTTL bounds an entry's life when no rule or hint sets one: the
	// backstop for writes pgone cannot see.
	DefaultTTL time.Duration `yaml:"default_ttl"`
	// SingleFlightWait is how long concurrent misses of one key wait for
	// the first one's result before going to PostgreSQL themselves.
	SingleFlightWait time.Duration `yaml:"single_flight_wait"`
	// Rules name the tables and statements whose reads may be cached
	// (mode rules, and auto besides what the tuner admits) and for how
	// long. A read is cached only if every table it reads is named by a
	// table rule, its fingerprint is named by a fingerprint rule, or it
	// carries the hint /* pgone:cache ttl=30s */.
	Rules []Rule `yaml:"rules"`
	// Redis is the shared store (L2); empty address: none.
	Redis Redis `yaml:"redis"`
	// Invalidation is none (the default: only writes through pgone
	// invalidate) or logical: a logical replication stream from each
	// primary also invalidates, for writes that bypass pgone (logical.go).
	Invalidation Invalidation `yaml:"invalidation"`
	// Publication is the publication the stream reads; empty: pgone
	// creates pgone_cache FOR ALL TABLES (which needs the privilege).
	Publication string `yaml:"publication"`
	// Slot is a permanent replication slot to use (created if missing);
	// empty: a temporary slot, dropped by PostgreSQL when pgone goes.
	Slot string `yaml:"slot"`
	// ReplicationMaxLag is how far behind the primary the stream may be
	// before the database's cache is bypassed until it catches up.
	ReplicationMaxLag time.Duration `yaml:"replication_max_lag"`
	// ReplicationUser and ReplicationPassword log the stream in (a role
	// with REPLICATION); empty: the database's server login.
	ReplicationUser     string `yaml:"replication_user"`
	ReplicationPassword string `yaml:"replication_password"`
}

// Rule lets reads of one table, or one statement, be cached; it names
// exactly one of Table and Fingerprint.
//
// Table is matched on its relation name, schema and case ignored
// ("public.Accounts" and "accounts" are one table). A view or a
// partitioned table may be named: the proxy resolves it to its base
// tables and partitions from the primary's catalog, so a write to those
// invalidates it.
//
// Fingerprint names a statement by its fingerprint as SHOW QUERIES and
// the tuner print it (16 hex digits; constants do not change it), so a
// read can be cached without vouching for every read of its tables. The
// read still passes every check a table rule's does (only immutable
// functions, no catalogs, no row security, no pgone:nocache), and its
// entries are invalidated by writes to the tables it reads like any
// other.
type Rule struct {
	Table       string `yaml:"table"`
	Fingerprint string `yaml:"fingerprint"`
	// TTL bounds the entries reading the table, or of the statement (0:
	// default_ttl); a read several rules admit lives as long as the
	// shortest.
	TTL time.Duration `yaml:"ttl"`
}

// ParseFingerprint reads a fingerprint as SHOW QUERIES prints it: up to 16
// hex digits, an 0x prefix allowed.
func ParseFingerprint(s string) (uint64, error) {
	t := strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(s), "0x"), "0X")
	if t == "" || len(t) > 16 {
		return 0, fmt.Errorf("must be the 16 hex digits SHOW QUERIES prints, got %q", s)
	}
	fp, err := strconv.ParseUint(t, 16, 64)
	if err != nil || fp == 0 {
		return 0, fmt.Errorf("must be the 16 hex digits SHOW QUERIES prints, got %q", s)
	}
	return fp, nil
}

// Redis configures the shared store (L2) behind the in-process one, and
// the table versions and invalidation bus every pgone instance shares
// (redis.go, bus.go).
type Redis struct {
	// Address is host:port; empty means no Redis.
	Address string `yaml:"address"`
	// Password is sent with AUTH when not empty.
	Password string `yaml:"password"`
	// DB is the Redis database number.
	DB int `yaml:"db"`
	// Timeout bounds each Redis call on a request's path (lookup, fill,
	// hit fence). A slow Redis costs a request at most this, then it goes
	// to PostgreSQL. A commit's invalidation gets 4x as long, since a lost
	// one flushes every instance's cache.
	Timeout time.Duration `yaml:"timeout"`
	// Prefix starts every key and the channel pgone uses, so several
	// pgone clusters (or other users) can share one Redis.
	Prefix string `yaml:"prefix"`
	// BreakerFailures consecutive failed calls open the circuit breaker:
	// the cache is bypassed without asking Redis until a probe after
	// BreakerCooldown succeeds.
	BreakerFailures int           `yaml:"breaker_failures"`
	BreakerCooldown time.Duration `yaml:"breaker_cooldown"`
	// Lease is how long an instance's membership lease lasts in Redis
	// (renewed every lease/4). While one instance's lease has lapsed (it
	// is cut off from Redis, or gone), every instance bypasses the cache;
	// a commit whose invalidation did not reach Redis waits up to about
	// this long once, so that no instance can serve what it made stale.
	Lease time.Duration `yaml:"lease"`
	// MemberTimeout is how long a lapsed instance stays a member before
	// another removes it and flushes every instance's cache (an instance
	// that died between a commit and its invalidation is covered then).
	MemberTimeout time.Duration `yaml:"member_timeout"`
}

// On says a Redis is configured.
func (r *Redis) On() bool { return r.Address != "" }

// validate reports the problems of one rule, under key.
func (r Rule) validate(key string) []error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	switch {
	case r.Table == "" && r.Fingerprint == "":
		add(key, "must name a table or a fingerprint")
	case r.Table != "" && r.Fingerprint != "":
		add(key, "names both table %q and fingerprint %q; a rule names one (write two rules)", r.Table, r.Fingerprint)
	case r.Fingerprint != "":
		if _, err := ParseFingerprint(r.Fingerprint); err != nil {
			add(key+".fingerprint", "%v", err)
		}
	case strings.HasPrefix(strings.ToLower(r.Table), "pg_") || strings.HasPrefix(strings.ToLower(r.Table), "information_schema."):
		add(key+".table", "system catalogs are never cached, got %q", r.Table)
	}
	if r.TTL < 0 {
		add(key+".ttl", "must not be negative, got %s", r.TTL)
	}
	return errs
}

// Defaults fills every zero field with its default.
func (c *Config) Defaults() {
	if c.Mode == "" {
		c.Mode = ModeOff
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = 256 << 20
	}
	if c.MaxEntryBytes == 0 {
		c.MaxEntryBytes = 1 << 20
	}
	if c.DefaultTTL == 0 {
		c.DefaultTTL = 60 * time.Second
	}
	if c.SingleFlightWait == 0 {
		c.SingleFlightWait = time.Second
	}
	c.logicalDefaults()
	c.Redis.defaults()
}

func (r *Redis) defaults() {
	if r.Timeout == 0 {
		r.Timeout = 5 * time.Millisecond
	}
	if r.Prefix == "" {
		r.Prefix = "pgone:"
	}
	if r.BreakerFailures == 0 {
		r.BreakerFailures = 5
	}
	if r.BreakerCooldown == 0 {
		r.BreakerCooldown = time.Second
	}
	if r.Lease == 0 {
		r.Lease = 2 * time.Second
	}
	if r.MemberTimeout == 0 {
		r.MemberTimeout = 30 * time.Second
	}
}

// Validate reports every problem with c; each error's text starts with the
// key path below the cache section, so config can prefix it. It expects
// Defaults to have run.
func (c *Config) Validate() []error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if err := c.Mode.Validate(); err != nil {
		add("mode", "%v", err)
	}
	if c.MaxBytes < 1 {
		add("max_bytes", "must be at least 1, got %d", c.MaxBytes)
	}
	if c.MaxEntryBytes < 1 || c.MaxEntryBytes > math.MaxUint32 {
		add("max_entry_bytes", "must be between 1 and 4294967295, got %d", c.MaxEntryBytes)
	} else if c.MaxBytes >= 1 && c.MaxEntryBytes > c.MaxBytes {
		add("max_entry_bytes", "must not exceed max_bytes (%d), got %d", c.MaxBytes, c.MaxEntryBytes)
	}
	if c.DefaultTTL <= 0 {
		add("default_ttl", "must be positive, got %s", c.DefaultTTL)
	}
	if c.SingleFlightWait <= 0 {
		add("single_flight_wait", "must be positive, got %s", c.SingleFlightWait)
	}
	for i, r := range c.Rules {
		errs = append(errs, r.validate(fmt.Sprintf("rules[%d]", i))...)
	}
	if c.Redis.Address != "" {
		if _, _, err := net.SplitHostPort(c.Redis.Address); err != nil {
			add("redis.address", "must be host:port, got %q", c.Redis.Address)
		}
	}
	errs = append(errs, c.validateLogical()...)
	if c.Redis.DB < 0 {
		add("redis.db", "must not be negative, got %d", c.Redis.DB)
	}
	if c.Redis.Timeout <= 0 {
		add("redis.timeout", "must be positive, got %s", c.Redis.Timeout)
	}
	if c.Redis.BreakerFailures < 1 {
		add("redis.breaker_failures", "must be at least 1, got %d", c.Redis.BreakerFailures)
	}
	if c.Redis.BreakerCooldown <= 0 {
		add("redis.breaker_cooldown", "must be positive, got %s", c.Redis.BreakerCooldown)
	}
	if c.Redis.Lease < 100*time.Millisecond {
		add("redis.lease", "must be at least 100ms, got %s", c.Redis.Lease)
	}
	if c.Redis.MemberTimeout < c.Redis.Lease {
		add("redis.member_timeout", "must be at least redis.lease (%s), got %s", c.Redis.Lease, c.Redis.MemberTimeout)
	}
	return errs
}
