package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/proxy"
)

func cmdServe(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "config file")
	var lf logFlags
	lf.register(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *path == "" {
		fmt.Fprintln(stderr, "pgone serve: --config is required")
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "pgone: %s: %v\n", *path, err)
		return 1
	}
	log, err := lf.logger(stderr, cfg.Log)
	if err != nil {
		fmt.Fprintln(stderr, "pgone:", err)
		return 2
	}
	reload := func() (*config.Config, error) { return config.Load(*path) }
	if err := serve(cfg, reload, log, nil, serveOptions{}); err != nil {
		log.Error("pgone stopped", "err", err)
		return 1
	}
	return 0
}

// serve runs pgone with cfg until SIGTERM or SIGINT, reloading on SIGHUP.
// ready, if set, is called once the listener is up.
func serve(cfg *config.Config, reload func() (*config.Config, error), log *slog.Logger, ready func(addr string), opts serveOptions) error {
	pools := pool.NewManager(cfg.Pool, log.With("part", "pool"))
	defer pools.Close()
	srv, err := proxy.New(cfg.Proxy, cfg.Pool, pools, log.With("part", "proxy"))
	if err != nil {
		return err
	}
	reg := newRegistry()
	if err := pools.RegisterMetrics(reg); err != nil {
		return err
	}
	if err := srv.RegisterMetrics(reg); err != nil {
		return err
	}
	stopCache, err := wireCache(cfg, srv, reg, log)
	if err != nil {
		return err
	}
	defer stopCache()
	tu, err := wireTuner(cfg, srv, pools, reg, log) // tuner.go: after the cache, so the cache answers first
	if err != nil {
		return err
	}
	defer runTuner(context.Background(), tu)()
	running := &runningConfig{cfg: cfg, started: cfg, load: reload, srv: srv, log: log}
	srv.SetVersion(versionString())
	srv.SetConfigRows(running.configRows)
	if reload != nil {
		srv.SetReloader(running.reload)
	}
	ln, err := net.Listen("tcp", cfg.Proxy.Listen)
	if err != nil {
		return err
	}
	log.Info("pgone listening", "addr", ln.Addr().String(), "version", versionString())
	for _, w := range cfg.Warnings() {
		log.Warn("risky setting (see pgone check)", "warning", w)
	}
	hs, err := startHTTP(cfg.HTTP.Listen, cfg.HTTP.Pprof, reg, log.With("part", "http"))
	switch {
	case err == nil:
		defer hs.close()
		log.Info("metrics and health listening", "addr", hs.Addr())
		if opts.httpReady != nil {
			opts.httpReady(hs.Addr())
		}
	case opts.optionalHTTP:
		log.Warn("not serving metrics and health: cannot listen", "addr", cfg.HTTP.Listen, "err", err)
	default:
		_ = ln.Close()
		return fmt.Errorf("http.listen: %w", err)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	hs.setReady(true) // the listener accepts (connections queue until Serve takes them)
	if ready != nil {
		ready(ln.Addr().String())
	}

	sigs := opts.signals
	if sigs == nil {
		ch := make(chan os.Signal, 4)
		signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
		defer signal.Stop(ch)
		sigs = ch
	}
	for {
		select {
		case err := <-serveErr:
			return err
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				if reload == nil {
					log.Info("SIGHUP ignored: nothing to reload from")
					continue
				}
				_ = running.reload() // logs the outcome
				continue
			}
			cfg = running.current()
			hs.setReady(false)
			log.Info("shutting down", "signal", sig.String(), "grace", cfg.Proxy.Limits.ShutdownTimeout)
			ctx, cancel := context.WithTimeout(context.Background(), cfg.Proxy.Limits.ShutdownTimeout)
			err := srv.Shutdown(ctx)
			cancel()
			if err != nil {
				log.Warn("shutdown grace period ended; remaining sessions were closed", "err", err)
			}
			<-serveErr
			log.Info("pgone stopped")
			return nil
		}
	}
}
