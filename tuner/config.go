package tuner

import (
	"fmt"
	"time"
)

// Mode is what a loop does with its decisions.
type Mode string

// Loop modes: off computes nothing, dry-run logs and counts decisions
// without acting, on acts.
const (
	ModeOff    Mode = "off"
	ModeDryRun Mode = "dry-run"
	ModeOn     Mode = "on"
)

// Config is the `tuner:` section of pgone's configuration.
type Config struct {
	// Interval is how often the loops run.
	Interval time.Duration `yaml:"interval"`
	// QueryStats collects per-statement statistics (SHOW QUERIES and the
	// top-N metrics). It costs every request a sample and a copy of its
	// reply frames, so it is off by default; cache_admission needs it and
	// turns it on.
	QueryStats bool `yaml:"query_stats"`
	// TopQueries bounds SHOW QUERIES and the per-query metrics.
	TopQueries int `yaml:"top_queries"`
	// PoolSize is loop 1's mode: pool sizes from clients' wait and the
	// servers' latency under concurrency.
	PoolSize Mode `yaml:"pool_size"`
	// CacheAdmission is loop 2's mode: which fingerprints the cache
	// admits when cache.mode is auto.
	CacheAdmission Mode `yaml:"cache_admission"`
	// ReplicaWeights is loop 3's mode: replica weights from measured
	// latency, lag as a penalty.
	ReplicaWeights Mode `yaml:"replica_weights"`
	// PGSettings is loop 4's mode: advice on PostgreSQL settings (SHOW
	// TUNER, the log); on also applies the reloadable ones when
	// ApplyPGSettings is true.
	PGSettings Mode `yaml:"pg_settings"`
	// MaxPoolSize bounds one pool's size as the tuner sets it (the total
	// stays within pool.max_server_connections).
	MaxPoolSize int `yaml:"max_pool_size"`
	// Step is the most a pool's size changes in one decision.
	Step int `yaml:"step"`
	// Cooldown is the least time between two changes of one pool.
	Cooldown time.Duration `yaml:"cooldown"`
	// ApplyPGSettings lets loop 4 (mode on) apply its advice on reloadable
	// settings (ALTER SYSTEM and pg_reload_conf()); false only shows it.
	ApplyPGSettings bool `yaml:"apply_pg_settings"`
}

// Defaults fills unset fields: every loop off, so an upgrade changes
// nothing until an operator turns a loop on.
func (c *Config) Defaults() {
	if c.Interval == 0 {
		c.Interval = 5 * time.Second
	}
	if c.TopQueries == 0 {
		c.TopQueries = 50
	}
	if c.PoolSize == "" {
		c.PoolSize = ModeOff
	}
	if c.CacheAdmission == "" {
		c.CacheAdmission = ModeOff
	}
	if c.ReplicaWeights == "" {
		c.ReplicaWeights = ModeOff
	}
	if c.PGSettings == "" {
		c.PGSettings = ModeOff
	}
	if c.MaxPoolSize == 0 {
		c.MaxPoolSize = 100
	}
	if c.Step == 0 {
		c.Step = 2
	}
	if c.Cooldown == 0 {
		c.Cooldown = 15 * time.Second
	}
}

// WantsSamples reports whether the tuner needs the proxy's per-request
// samples.
func (c Config) WantsSamples() bool { return c.QueryStats || c.CacheAdmission != ModeOff }

// Runs reports whether any loop runs.
func (c Config) Runs() bool {
	return c.PoolSize != ModeOff || c.CacheAdmission != ModeOff || c.PGSettings != ModeOff || c.ReplicaWeights != ModeOff
}

// Validate reports every problem with c, each starting with its key path
// below the tuner section. It expects Defaults to have run.
func (c *Config) Validate() []error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	for key, m := range map[string]Mode{"pool_size": c.PoolSize, "cache_admission": c.CacheAdmission, "pg_settings": c.PGSettings, "replica_weights": c.ReplicaWeights} {
		if m != ModeOff && m != ModeDryRun && m != ModeOn {
			add(key, "must be off, dry-run or on, got %q", m)
		}
	}
	if c.Interval < 100*time.Millisecond {
		add("interval", "must be at least 100ms, got %s", c.Interval)
	}
	if c.TopQueries < 1 || c.TopQueries > 1000 {
		add("top_queries", "must be between 1 and 1000, got %d", c.TopQueries)
	}
	if c.MaxPoolSize < 1 {
		add("max_pool_size", "must be at least 1, got %d", c.MaxPoolSize)
	}
	if c.Step < 1 {
		add("step", "must be at least 1, got %d", c.Step)
	}
	if c.Cooldown < 0 {
		add("cooldown", "must not be negative, got %s", c.Cooldown)
	}
	return errs
}
