package main

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgone/pgone/cache"
	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/proxy"
	"github.com/pgone/pgone/tuner"
)

// TestWireCache: with every database off (cache.mode off and no
// cache_mode, or cache.mode rules and every database's cache_mode off)
// nothing is built (no pgone_cache_* metrics); rules and auto build the
// cache and register its metrics, also when only one database's cache_mode
// asks for it.
func TestWireCache(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		global    cache.Mode
		app, rest cache.Mode // the cache_mode of app and of the wildcard
		built     bool
	}{
		{cache.ModeOff, "", "", false},
		{cache.ModeRules, "", "", true},
		{cache.ModeAuto, "", "", true},
		{cache.ModeOff, cache.ModeRules, "", true},
		{cache.ModeOff, "", cache.ModeAuto, true},
		{cache.ModeRules, cache.ModeOff, cache.ModeOff, false},
	} {
		name := fmt.Sprintf("cache.mode %s, app %q, * %q", tc.global, tc.app, tc.rest)
		cfg := &config.Config{
			Proxy: proxy.Config{Listen: "127.0.0.1:0",
				Databases: map[string]proxy.Database{
					"app": {Host: "127.0.0.1", Port: 5432, CacheMode: tc.app},
					"*":   {Host: "127.0.0.1", Port: 5432, CacheMode: tc.rest}},
				Users: map[string]proxy.User{"alice": {Password: "x"}}},
			Cache: cache.Config{Mode: tc.global, Rules: []cache.Rule{{Table: "t"}}},
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
			t.Fatalf("%s: %v", name, err)
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
		if found != tc.built {
			t.Errorf("%s: cache metrics registered = %v, want %v", name, found, tc.built)
		}
		pools.Close()
	}
}

// TestCacheReloadWarnings: a reload that needs the cache built, changes
// the cache section, or needs the admission wired says it needs a restart;
// one that only changes a database's cache_mode under a built cache does
// not (the proxy applies it per request).
func TestCacheReloadWarnings(t *testing.T) {
	cfgOf := func(global, app cache.Mode, admission tuner.Mode) *config.Config {
		c := &config.Config{Proxy: proxy.Config{Databases: map[string]proxy.Database{"app": {Host: "h", CacheMode: app}, "other": {Host: "h"}}},
			Cache: cache.Config{Mode: global}, Tuner: tuner.Config{CacheAdmission: admission}}
		c.Defaults()
		return c
	}
	for _, tc := range []struct {
		name      string
		old, next *config.Config
		want      string // a substring of the one warning; "" for none
	}{
		{"database off to rules under a built cache", cfgOf(cache.ModeRules, cache.ModeOff, ""), cfgOf(cache.ModeRules, cache.ModeRules, ""), ""},
		{"database rules to off", cfgOf(cache.ModeOff, cache.ModeRules, ""), cfgOf(cache.ModeOff, cache.ModeOff, ""), ""},
		{"cache never built", cfgOf(cache.ModeOff, "", ""), cfgOf(cache.ModeOff, cache.ModeRules, ""), "not built at start"},
		{"cache section changed", cfgOf(cache.ModeRules, "", ""), cfgOf(cache.ModeAuto, "", ""), "cache section changes"},
		{"admission not wired", cfgOf(cache.ModeOff, cache.ModeRules, tuner.ModeOn), cfgOf(cache.ModeOff, cache.ModeAuto, tuner.ModeOn), "admission was not wired"},
	} {
		got := cacheReloadWarnings(tc.old, tc.next)
		switch {
		case tc.want == "" && len(got) != 0:
			t.Errorf("%s: warnings %q; want none", tc.name, got)
		case tc.want != "" && (len(got) != 1 || !strings.Contains(got[0], tc.want)):
			t.Errorf("%s: warnings %q; want one saying %q", tc.name, got, tc.want)
		}
	}
}

// TestReloadWarnsAgainstStartConfig: the cache, the tuner and the HTTP
// listener are built from the config pgone started with, so every reload
// is judged against that one. With every database's cache off at start, a
// reload turning one on warns, and so does the next reload that keeps it
// on (judged against the previous reload, it would look like no change
// while no cache exists); the same for http.listen and the tuner. A
// reload back to the start config warns of nothing.
func TestReloadWarnsAgainstStartConfig(t *testing.T) {
	cfgOf := func(app cache.Mode, poolSize int) *config.Config {
		c := &config.Config{Proxy: proxy.Config{Databases: map[string]proxy.Database{
			"app": {Host: "127.0.0.1", Port: 5432, CacheMode: app, PoolSize: poolSize}}}}
		c.Defaults()
		if app != cache.ModeOff {
			c.HTTP.Listen = "127.0.0.1:1"
			c.Tuner.TopQueries++
		}
		return c
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	start := cfgOf(cache.ModeOff, 5)
	pools := pool.NewManager(start.Pool, log)
	defer pools.Close()
	srv, err := proxy.New(start.Proxy, start.Pool, pools, log)
	if err != nil {
		t.Fatal(err)
	}
	next := []*config.Config{cfgOf(cache.ModeRules, 5), cfgOf(cache.ModeRules, 6), cfgOf(cache.ModeOff, 5)}
	rc := &runningConfig{cfg: start, started: start, srv: srv, log: log,
		load: func() (*config.Config, error) { c := next[0]; next = next[1:]; return c, nil }}
	warnings := []string{"not built at start", "http.listen changes need a restart", "tuner changes need a restart"}
	for i := 1; i <= 3; i++ {
		logs.Reset()
		if err := rc.reload(); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		for _, w := range warnings {
			if got := strings.Contains(logs.String(), w); got != (i < 3) {
				t.Errorf("reload %d: logged %q: %v, want %v:\n%s", i, w, got, i < 3, logs.String())
			}
		}
	}
}
