package config

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"

	"github.com/pgone/pgone/cache"
	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/proxy"
	"github.com/pgone/pgone/tuner"
)

// Config is the whole configuration file. Each part owns its section; this
// type only composes them so one file decodes strictly into all of them.
type Config struct {
	// Proxy holds the top-level keys: listen, auth_method, limits, tls,
	// databases, users, admin_users.
	Proxy proxy.Config `yaml:",inline"`
	// Pool is the server-side section.
	Pool pool.Config `yaml:"pool"`
	// Cache is the result cache section (mode off by default).
	Cache cache.Config `yaml:"cache"`
	// Tuner is the adaptive tuner section (every loop off by default).
	Tuner tuner.Config `yaml:"tuner"`
	// Log configures pgone's own log.
	Log Log `yaml:"log"`
	// HTTP is the metrics and health endpoint.
	HTTP HTTP `yaml:"http"`
}

// Log configures pgone's own log output.
type Log struct {
	// Format is text or json.
	Format string `yaml:"format"`
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
}

// Log formats and levels.
const (
	LogText = "text"
	LogJSON = "json"

	LevelDebug = "debug"
	LevelInfo  = "info"
	LevelWarn  = "warn"
	LevelError = "error"
)

// SlogLevel returns the level for log/slog; it assumes l was validated and
// falls back to info otherwise.
func (l Log) SlogLevel() slog.Level {
	switch l.Level {
	case LevelDebug:
		return slog.LevelDebug
	case LevelWarn:
		return slog.LevelWarn
	case LevelError:
		return slog.LevelError
	}
	return slog.LevelInfo
}

// HTTP configures the endpoint that serves /metrics, /healthz and /readyz.
type HTTP struct {
	Listen string `yaml:"listen"`
	// Pprof also serves Go's profiler under /debug/pprof/ (off by default).
	Pprof bool `yaml:"pprof"`
}

// DefaultHTTPListen is where metrics and health are served by default:
// loopback only, since the endpoint has no authentication.
const DefaultHTTPListen = "127.0.0.1:9930"

// Load reads the file at path and returns its validated configuration.
// A file that cannot be read gives that error; a file with problems gives
// an *Error listing all of them.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(data)
}

// Parse decodes data strictly, applies defaults and validates. On any problem
// it returns nil and an *Error with every problem found, decode and
// validation problems together.
func Parse(data []byte) (*Config, error) {
	c := new(Config)
	d, fatal := decode(data, c)
	if fatal {
		return nil, &Error{Problems: d.problems}
	}
	c.Defaults()
	for _, p := range c.problems() {
		if d.covers(p.Key) {
			// The value never decoded; its zero value's complaint would
			// only repeat the decode problem.
			continue
		}
		p.Line = d.index.line(p.Key)
		d.problems = append(d.problems, p)
	}
	if len(d.problems) > 0 {
		return nil, &Error{Problems: d.problems}
	}
	return c, nil
}

// Defaults fills every unset field with its default, part by part.
func (c *Config) Defaults() {
	c.Proxy.Defaults()
	c.Pool.Defaults()
	c.Cache.Defaults()
	c.Tuner.Defaults()
	if c.Log.Format == "" {
		c.Log.Format = LogText
	}
	if c.Log.Level == "" {
		c.Log.Level = LevelInfo
	}
	if c.HTTP.Listen == "" {
		c.HTTP.Listen = DefaultHTTPListen
	}
}

// Validate returns nil or an *Error listing every problem with c. It expects
// Defaults to have run.
func (c *Config) Validate() error {
	if ps := c.problems(); len(ps) > 0 {
		return &Error{Problems: ps}
	}
	return nil
}

func (c *Config) problems() []Problem {
	var ps []Problem
	ps = append(ps, fromErrors("", c.Proxy.Validate())...)
	ps = append(ps, sortedByKey(fromErrors("pool", c.Pool.Validate()))...)
	ps = append(ps, sortedByKey(fromErrors("cache", c.Cache.Validate()))...)
	ps = append(ps, sortedByKey(fromErrors("tuner", c.Tuner.Validate()))...)
	switch c.Log.Format {
	case LogText, LogJSON:
	default:
		ps = append(ps, Problem{Key: "log.format", Message: fmt.Sprintf("must be text or json, got %q", c.Log.Format)})
	}
	switch c.Log.Level {
	case LevelDebug, LevelInfo, LevelWarn, LevelError:
	default:
		ps = append(ps, Problem{Key: "log.level", Message: fmt.Sprintf("must be debug, info, warn or error, got %q", c.Log.Level)})
	}
	if msg := checkHostPort(c.HTTP.Listen); msg != "" {
		ps = append(ps, Problem{Key: "http.listen", Message: msg})
	}
	return ps
}

func checkHostPort(addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Sprintf("must be host:port, got %q", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Sprintf("port must be 0-65535, got %q", port)
	}
	return ""
}
