package main

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgone/pgone/cache"
	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/proxy"
)

// wireCache builds the result cache when cache.mode is not off, registers
// its metrics and installs it as the proxy's hooks. With mode off nothing
// is built: the pipeline runs without hooks, at no cost. Mode auto
// behaves as rules until the tuner fills it. With cache.redis.address the
// cache's Redis bus starts in the background (the cache is bypassed until
// it is in sync); stop ends it.
func wireCache(cfg *config.Config, srv *proxy.Server, reg prometheus.Registerer, log *slog.Logger) (stop func(), err error) {
	if cfg.Cache.Mode == cache.ModeOff {
		return func() {}, nil
	}
	c, err := cache.New(cfg.Cache)
	if err != nil {
		return nil, err
	}
	if err := c.RegisterMetrics(reg); err != nil {
		return nil, err
	}
	srv.SetCache(c, cfg.Cache.Rules)
	srv.SetCacheInvalidation(cfg.Cache)
	c.Start(log.With("part", "cache"))
	log.Info("result cache on", "mode", cfg.Cache.Mode, "rules", len(cfg.Cache.Rules), "max_bytes", cfg.Cache.MaxBytes,
		"invalidation", cfg.Cache.Invalidation, "redis", cfg.Cache.Redis.Address)
	return c.Close, nil
}
