package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/internal/logx"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "serve":
		return cmdServe(args[1:], stderr)
	case "check":
		return cmdCheck(args[1:], stdout, stderr)
	case "demo":
		return cmdDemo(args[1:], stdout, stderr)
	case "healthcheck":
		return cmdHealthcheck(args[1:], stdout, stderr)
	case "import-pgbouncer":
		return cmdImportPgBouncer(args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "pgone", versionString())
		return 0
	case "help", "-h", "--help":
		usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "pgone: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  pgone serve --config FILE [--log-format text|json] [--log-level LEVEL]
  pgone check --config FILE
  pgone demo [--port 6432] [--log-format text|json]
  pgone healthcheck [--url http://127.0.0.1:9930/healthz] [--timeout 3s]
  pgone import-pgbouncer [-o pgone.yaml] pgbouncer.ini [userlist.txt]
  pgone version
`)
}

func versionString() string {
	v := version
	if info, ok := debug.ReadBuildInfo(); ok && v == "dev" {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v = "dev-" + s.Value[:12]
			}
		}
	}
	return v
}

// logFlags are the flags every long-running command takes.
type logFlags struct {
	format string
	level  string
}

func (l *logFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&l.format, "log-format", "", "log format: text or json (overrides the config)")
	fs.StringVar(&l.level, "log-level", "", "log level: debug, info, warn or error (overrides the config)")
}

func (l *logFlags) logger(w io.Writer, cfg config.Log) (*slog.Logger, error) {
	if l.format != "" {
		cfg.Format = l.format
	}
	if l.level != "" {
		cfg.Level = l.level
	}
	switch cfg.Level {
	case "", config.LevelDebug, config.LevelInfo, config.LevelWarn, config.LevelError:
	default:
		return nil, fmt.Errorf("--log-level: must be debug, info, warn or error, got %q", cfg.Level)
	}
	opts := &slog.HandlerOptions{Level: cfg.SlogLevel()}
	var h slog.Handler
	switch cfg.Format {
	case "", config.LogText:
		h = slog.NewTextHandler(w, opts)
	case config.LogJSON:
		h = slog.NewJSONHandler(w, opts)
	default:
		return nil, fmt.Errorf("--log-format: must be text or json, got %q", cfg.Format)
	}
	// A flood of one line (bogus cancels, login timeouts) becomes a few
	// lines and a count; no line passes 2 KB.
	return slog.New(logx.New(h, logx.Options{})), nil
}

// printConfigError writes each problem of a config.Error on its own line
// after prefix, or err itself (a file config.Load could not read, which
// names the file already) when it is not one.
func printConfigError(w io.Writer, prefix string, err error) {
	var ce *config.Error
	if !errors.As(err, &ce) {
		fmt.Fprintln(w, err)
		return
	}
	for _, p := range ce.Problems {
		fmt.Fprintf(w, "%s: %s\n", prefix, p)
	}
}

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "config file to validate")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *path == "" {
		fmt.Fprintln(stderr, "pgone check: --config is required")
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		printConfigError(stderr, *path, err)
		return 1
	}
	for _, w := range cfg.Warnings() {
		fmt.Fprintf(stderr, "%s: warning: %s\n", *path, w)
	}
	fmt.Fprintf(stdout, "%s: ok\n", *path)
	return 0
}
