package main

import (
	"log/slog"
	"reflect"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgone/pgone/cache"
	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/proxy"
	"github.com/pgone/pgone/tuner"
)

// wireCache builds the result cache when any database caches (cache.mode,
// or a database's cache_mode, is rules or auto), registers its metrics and
// installs it as the proxy's hooks; the databases in mode off then neither
// read nor fill it, but their writes invalidate it. With every database
// off nothing is built: the pipeline runs without hooks, at no cost. Mode
// auto behaves as rules until the tuner fills it. With cache.redis.address the
// cache's Redis bus starts in the background (the cache is bypassed until
// it is in sync); stop ends it.
func wireCache(cfg *config.Config, srv *proxy.Server, reg prometheus.Registerer, log *slog.Logger) (stop func(), err error) {
	if !cfg.CacheOn() {
		return func() {}, nil
	}
	c, err := cache.New(cfg.Cache)
	if err != nil {
		return nil, err
	}
	if err := c.RegisterMetrics(reg); err != nil {
		return nil, err
	}
	srv.SetCache(c, cfg.Cache)
	srv.SetCacheInvalidation(cfg.Cache)
	c.Start(log.With("part", "cache"))
	log.Info("result cache on", "mode", cfg.Cache.Mode, "databases", databaseCacheModes(cfg), "rules", len(cfg.Cache.Rules), "max_bytes", cfg.Cache.MaxBytes,
		"invalidation", cfg.Cache.Invalidation, "redis", cfg.Cache.Redis.Address)
	return c.Close, nil
}

// databaseCacheModes lists the databases whose cache_mode overrides
// cache.mode, for the start log: "app=rules,reports=off".
func databaseCacheModes(cfg *config.Config) string {
	var out []string
	for name, db := range cfg.Proxy.Databases {
		if db.CacheMode != "" {
			out = append(out, name+"="+string(db.CacheMode))
		}
	}
	slices.Sort(out)
	return strings.Join(out, ",")
}

// cacheReloadWarnings are what a reload from old to next cannot apply to
// the cache: a database's cache_mode applies at once (the proxy reads it
// per request), but the cache itself, its section, and the tuner's
// admission are built at start.
func cacheReloadWarnings(old, next *config.Config) []string {
	var out []string
	if !old.CacheOn() && next.CacheOn() {
		out = append(out, "the result cache was not built at start (every database's cache mode was off): caching needs a restart")
	} else if !reflect.DeepEqual(old.Cache, next.Cache) {
		out = append(out, "cache section changes need a restart; the cache keeps its running settings (databases' cache_mode changes apply now)")
	}
	if old.CacheOn() && !old.CacheAuto() && next.CacheAuto() && next.Tuner.CacheAdmission != tuner.ModeOff {
		out = append(out, "the tuner's cache admission was not wired at start (no database in cache mode auto): it needs a restart; auto databases behave as rules")
	}
	return out
}
