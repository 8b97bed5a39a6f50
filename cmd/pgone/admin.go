package main

import (
	"log/slog"
	"os"
	"sync"

	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/proxy"
)

// serveOptions are what differs between serve, the demo and tests.
type serveOptions struct {
	// optionalHTTP: when http.listen cannot be bound, log and go on (the
	// demo, whose fixed port may be taken) instead of failing.
	optionalHTTP bool
	// signals, if set, replaces the process's SIGTERM, SIGINT and SIGHUP.
	signals <-chan os.Signal
	// httpReady, if set, gets the HTTP address once it listens.
	httpReady func(addr string)
}

// runningConfig is the configuration in force. SIGHUP and the console's
// RELOAD both go through reload, one at a time.
type runningConfig struct {
	load func() (*config.Config, error) // nil: no file to reload from
	srv  *proxy.Server
	log  *slog.Logger
	// started is the config pgone started with: what the parts that need
	// a restart (the cache, the tuner) were built from.
	started *config.Config

	mu  sync.Mutex
	cfg *config.Config
}

func (rc *runningConfig) current() *config.Config {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.cfg
}

// reload reads the config file again and swaps it in; on any problem the
// running config stays. It logs the outcome.
func (rc *runningConfig) reload() error {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	next, err := rc.load()
	if err == nil {
		err = rc.srv.Reload(next.Proxy, next.Pool)
	}
	if err != nil {
		rc.log.Error("reload rejected; keeping the running config", "err", err)
		return err
	}
	// What needs a restart is judged against the config pgone started
	// with: a change kept over two reloads is still not applied, and a
	// change undone by a reload no longer needs one.
	if next.HTTP.Listen != rc.started.HTTP.Listen {
		rc.log.Warn("http.listen changes need a restart; still serving on the old address", "old", rc.started.HTTP.Listen, "new", next.HTTP.Listen)
	}
	for _, w := range cacheReloadWarnings(rc.started, next) {
		rc.log.Warn(w)
	}
	if next.Tuner != rc.started.Tuner {
		rc.log.Warn("tuner changes need a restart; the tuner keeps its running settings")
	}
	rc.cfg = next
	rc.log.Info("config reloaded")
	return nil
}

// configRows is SHOW CONFIG: the running config, passwords masked.
func (rc *runningConfig) configRows() []proxy.ConfigRow {
	defaults := new(config.Config)
	defaults.Defaults()
	return proxy.ConfigRows(rc.current().Redacted(), defaults, "listen", "http.listen")
}
