package main

import (
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgone/pgone/cache"
	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/proxy"
)

// TestWireCache: mode off builds nothing (no pgone_cache_* metrics);
// rules and auto build the cache and register its metrics.
func TestWireCache(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, mode := range []cache.Mode{cache.ModeOff, cache.ModeRules, cache.ModeAuto} {
		cfg := &config.Config{
			Proxy: proxy.Config{Listen: "127.0.0.1:0",
				Databases: map[string]proxy.Database{"app": {Host: "127.0.0.1", Port: 5432}},
				Users:     map[string]proxy.User{"alice": {Password: "x"}}},
			Cache: cache.Config{Mode: mode, Rules: []cache.Rule{{Table: "t"}}},
		}
		cfg.Defaults()
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		pools := pool.NewManager(cfg.Pool, log)
		srv, err := proxy.New(cfg.Proxy, cfg.Pool, pools, log)
		if err != nil {
			t.Fatal(err)
		}
		reg := prometheus.NewRegistry()
		stop, err := wireCache(cfg, srv, reg, log)
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		stop()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, mf := range mfs {
			found = found || strings.HasPrefix(mf.GetName(), "pgone_cache_")
		}
		if found != (mode != cache.ModeOff) {
			t.Errorf("mode %s: cache metrics registered = %v", mode, found)
		}
		pools.Close()
	}
}
