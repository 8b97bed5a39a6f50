package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgone/pgone/cache"
	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/proxy"
	"github.com/pgone/pgone/proxy/auth"
)

// minimal holds only the required keys.
const minimal = `
databases:
  app: {host: db.internal}
users:
  alice: {password: alice-secret}
`

// withMinimal appends top-level keys other than databases and users.
func withMinimal(extra string) string { return minimal + extra }

func mustParse(t *testing.T, text string) *Config {
	t.Helper()
	c, err := Parse([]byte(text))
	if err != nil {
		t.Fatalf("Parse: unexpected error:\n%v", err)
	}
	return c
}

// mustFail parses text and returns its problems; it fails the test unless
// Parse returned an *Error and no Config.
func mustFail(t *testing.T, text string) []Problem {
	t.Helper()
	c, err := Parse([]byte(text))
	if err == nil {
		t.Fatalf("Parse: want an error, got none")
	}
	if c != nil {
		t.Errorf("Parse: want no Config with an error, got one")
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Parse: error is %T, want *Error: %v", err, err)
	}
	if len(e.Problems) == 0 {
		t.Fatalf("Parse: *Error without problems")
	}
	return e.Problems
}

func keys(ps []Problem) []string {
	ks := make([]string, len(ps))
	for i, p := range ps {
		ks[i] = p.Key
	}
	return ks
}

func TestParseMinimal(t *testing.T) {
	c := mustParse(t, minimal)
	if got := c.Proxy.Databases["app"]; got.Host != "db.internal" || got.Port != 5432 {
		t.Errorf("databases.app = %+v, want host db.internal port 5432", got)
	}
	if got := c.Proxy.Users["alice"].Password; got != "alice-secret" {
		t.Errorf("users.alice.password = %q", got)
	}
	if c.Proxy.AuthMethod != auth.SCRAM || c.Pool.Mode != pool.ModeSession || c.Log.Format != LogText || c.HTTP.Listen != DefaultHTTPListen {
		t.Errorf("defaults not applied: %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate after Parse: %v", err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte(minimal), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(good); err != nil {
		t.Errorf("Load(good): %v", err)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte(withMinimal("bogus: 1\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(bad)
	var e *Error
	if !errors.As(err, &e) || len(e.Problems) != 1 || e.Problems[0].Key != "bogus" {
		t.Errorf("Load(bad) = %v, want *Error about bogus", err)
	}

	_, err = Load(filepath.Join(dir, "missing.yaml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want fs.ErrNotExist", err)
	}
}

func TestDurations(t *testing.T) {
	c := mustParse(t, withMinimal(`
pool:
  query_wait_timeout: 1h30m
  server_connect_timeout: 500ms
limits:
  shutdown_timeout: "45s"
`))
	if c.Pool.QueryWaitTimeout != 90*time.Minute || c.Pool.ServerConnectTimeout != 500*time.Millisecond || c.Proxy.Limits.ShutdownTimeout != 45*time.Second {
		t.Errorf("durations = %v %v %v", c.Pool.QueryWaitTimeout, c.Pool.ServerConnectTimeout, c.Proxy.Limits.ShutdownTimeout)
	}
}

// TestDecodeProblems covers what yaml.v3 rejects, turned into keyed problems.
func TestDecodeProblems(t *testing.T) {
	const durationMsg = `must be a duration with a unit, such as "30s" or "5m"`
	tests := []struct {
		name string
		text string
		want []Problem // Key, Line and a substring of Message
	}{
		{"unknown top-level key", withMinimal("bogus: 1\n"),
			[]Problem{{Key: "bogus", Message: "unknown key", Line: 6}}},
		{"unknown nested key", withMinimal("pool:\n  pool_size: 5\n  sizee: 3\n"),
			[]Problem{{Key: "pool.sizee", Message: "unknown key", Line: 8}}},
		{"unknown key two levels down", withMinimal("pool:\n  server_tls:\n    ssl_mode: require\n"),
			[]Problem{{Key: "pool.server_tls.ssl_mode", Message: "unknown key", Line: 8}}},
		{"unknown key in a database", "databases:\n  app: {host: h, hots: x}\nusers: {alice: {password: p}}\n",
			[]Problem{{Key: "databases.app.hots", Message: "unknown key", Line: 2}}},
		{"unknown key in a replica", "databases:\n  app:\n    host: h\n    replicas:\n      - {host: r, port: 5432}\n      - {host: r, port: 5432, wieght: 2}\nusers: {alice: {password: p}}\n",
			[]Problem{{Key: "databases.app.replicas[1].wieght", Message: "unknown key", Line: 6}}},
		{"unknown key in a user", "databases: {app: {host: h}}\nusers:\n  bob:\n    pasword: secret\n",
			[]Problem{{Key: "users.bob.pasword", Message: "unknown key", Line: 4}, {Key: "users.bob.password", Message: "is required", Line: 3}}},
		{"string for integer", withMinimal("pool:\n  pool_size: abc\n"),
			[]Problem{{Key: "pool.pool_size", Message: `must be an integer, got "abc"`, Line: 7}}},
		{"long value is quoted whole", withMinimal("pool:\n  pool_size: abcdefghijklmnop\n"),
			[]Problem{{Key: "pool.pool_size", Message: `must be an integer, got "abcdefghijklmnop"`, Line: 7}}},
		{"string for port", "databases:\n  app: {host: h, port: x}\nusers: {alice: {password: p}}\n",
			[]Problem{{Key: "databases.app.port", Message: `must be an integer, got "x"`, Line: 2}}},
		{"scalar for section", withMinimal("limits: 5\n"),
			[]Problem{{Key: "limits", Message: "must be a mapping, got 5", Line: 6}}},
		{"list for map", "databases: [app]\nusers: {alice: {password: p}}\n",
			[]Problem{{Key: "databases", Message: "must be a mapping, got a list", Line: 1}}},
		{"scalar for list", withMinimal("admin_users: alice\n"),
			[]Problem{{Key: "admin_users", Message: `must be a list, got "alice"`, Line: 6}}},
		{"list for string", withMinimal("listen: [a, b]\n"),
			[]Problem{{Key: "listen", Message: "must be a string, got a list", Line: 6}}},
		{"list for database entry", "databases:\n  app: {host: h}\n  \"*\": [x]\nusers: {alice: {password: p}}\n",
			[]Problem{{Key: "databases.*", Message: "must be a mapping, got a list", Line: 3}}},
		{"integer duration", withMinimal("pool:\n  query_wait_timeout: 30\n"),
			[]Problem{{Key: "pool.query_wait_timeout", Message: durationMsg + ", got 30", Line: 7}}},
		{"word duration", withMinimal("limits:\n  client_login_timeout: soon\n"),
			[]Problem{{Key: "limits.client_login_timeout", Message: durationMsg + `, got "soon"`, Line: 7}}},
		{"duration with unknown unit", withMinimal("pool:\n  server_lifetime: 3d\n"),
			[]Problem{{Key: "pool.server_lifetime", Message: durationMsg + `, got "3d"`, Line: 7}}},
		{"float duration", withMinimal("pool:\n  server_idle_timeout: 1.5\n"),
			[]Problem{{Key: "pool.server_idle_timeout", Message: durationMsg + ", got 1.5", Line: 7}}},
		{"duration with space", withMinimal("limits:\n  shutdown_timeout: 10 s\n"),
			[]Problem{{Key: "limits.shutdown_timeout", Message: durationMsg + `, got "10 s"`, Line: 7}}},
		{"negative duration decodes, then fails validation", withMinimal("pool:\n  server_connect_timeout: -5s\n"),
			[]Problem{{Key: "pool.server_connect_timeout", Message: "must not be negative, got -5s", Line: 7}}},
		{"duplicate key", withMinimal("listen: a:1\nlisten: b:2\n"),
			[]Problem{{Key: "listen", Message: "is set more than once, first at line 6", Line: 7}}},
		{"duplicate map entry", "databases: {app: {host: h}}\nusers:\n  bob: {password: p}\n  bob: {password: q}\n",
			[]Problem{{Key: "users.bob", Message: "is set more than once, first at line 3", Line: 4}}},
		{"flow style on one line", "databases: {app: {host: h, port: p}}\nusers: {alice: {password: p, mode: x}}\n",
			[]Problem{{Key: "databases.app.port", Message: `got "p"`, Line: 1}, {Key: "users.alice.mode", Message: "unknown key", Line: 2}}},
		{"top level is a list", "- a\n- b\n",
			[]Problem{{Key: "", Message: "the document must be a mapping, got a list", Line: 1}}},
		{"empty file", "", []Problem{{Message: "the file is empty"}}},
		{"only comments", "# nothing here\n\n", []Problem{{Message: "the file is empty"}}},
		{"null document", "---\n", []Problem{{Message: "the file is empty", Line: 1}}},
		{"two documents", minimal + "---\n" + minimal,
			[]Problem{{Message: "more than one YAML document", Line: 6}}},
		// yaml.v3 picks these lines; they are passed through.
		{"syntax error", "databases: {app: {host: h}\n", []Problem{{Message: "invalid YAML: did not find expected ',' or '}'", Line: 1}}},
		{"bad indentation", "pool:\n  mode: session\n pool_size: 3\n", []Problem{{Message: "invalid YAML: did not find expected key", Line: 2}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkProblems(t, mustFail(t, tt.text), tt.want)
		})
	}
}

func checkProblems(t *testing.T, got, want []Problem) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%s", len(got), len(want), (&Error{got}).Error())
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Key != w.Key || g.Line != w.Line || !strings.Contains(g.Message, w.Message) {
			t.Errorf("problem %d = %q (key %q, line %d)\nwant key %q, line %d, message containing %q", i, g, g.Key, g.Line, w.Key, w.Line, w.Message)
		}
	}
}

// A value that failed to decode must not also be reported by validation.
func TestDecodeProblemSuppressesItsValidation(t *testing.T) {
	ps := mustFail(t, "databases: [app]\nusers: {alice: {password: p}}\n")
	if len(ps) != 1 {
		t.Errorf("want only the decode problem, got:\n%s", &Error{ps})
	}
	ps = mustFail(t, "databases: {app: {host: h}}\nusers: {bob: [x]}\n")
	if got := keys(ps); len(got) != 1 || got[0] != "users.bob" {
		t.Errorf("want only users.bob, got:\n%s", &Error{ps})
	}
}

func TestMultipleProblemsReportedTogether(t *testing.T) {
	text := `listen: nowhere
bogus: true
pool:
  pool_size: many
  mode: sometimes
databases:
  app: {host: h, port: 70000}
users:
  bob: {auth_method: md5}
log: {level: loud}
`
	want := []Problem{
		{Key: "bogus", Message: "unknown key", Line: 2},
		{Key: "pool.pool_size", Message: "must be an integer", Line: 4},
		{Key: "listen", Message: "must be host:port", Line: 1},
		{Key: "databases.app.port", Message: "must be 1-65535, got 70000", Line: 7},
		{Key: "users.bob.password", Message: "is required with auth_method md5", Line: 9},
		{Key: "pool.mode", Message: `must be session or transaction, got "sometimes"`, Line: 5},
		{Key: "log.level", Message: "must be debug, info, warn or error", Line: 10},
	}
	ps := mustFail(t, text)
	checkProblems(t, ps, want)

	err := (&Error{ps}).Error()
	if lines := strings.Split(err, "\n"); len(lines) != len(want) || lines[0] != "bogus: unknown key (line 2)" {
		t.Errorf("Error() =\n%s", err)
	}
}

func TestProblemString(t *testing.T) {
	tests := []struct {
		p    Problem
		want string
	}{
		{Problem{Key: "pool.pool_size", Message: "must be at least 1, got 0"}, "pool.pool_size: must be at least 1, got 0"},
		{Problem{Key: "pool.sizee", Message: "unknown key", Line: 3}, "pool.sizee: unknown key (line 3)"},
		{Problem{Message: "the file is empty"}, "the file is empty"},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

func TestValidateOnBuiltConfig(t *testing.T) {
	c := &Config{Proxy: proxy.Config{
		Databases: map[string]proxy.Database{"app": {Host: "h"}},
		Users:     map[string]proxy.User{"alice": {Password: "p"}},
	}}
	c.Defaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	c.Pool.PoolSize = -1
	err := c.Validate()
	var e *Error
	if !errors.As(err, &e) || len(e.Problems) != 1 || e.Problems[0].Key != "pool.pool_size" || e.Problems[0].Line != 0 {
		t.Errorf("Validate = %v, want one pool.pool_size problem without a line", err)
	}
}

func TestFromErrors(t *testing.T) {
	got := fromErrors("pool", []error{
		errors.New("pool_size: must be at least 1: got 0"),
		errors.New("no key here"),
	})
	want := []Problem{
		{Key: "pool.pool_size", Message: "must be at least 1: got 0"},
		{Key: "pool", Message: "no key here"},
	}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("fromErrors = %+v, want %+v", got, want)
	}
}

// Problems must not quote passwords, whatever is wrong with them.
func TestProblemsHidePasswords(t *testing.T) {
	const secret = "md5deadbeef"
	text := "databases:\n  app: {host: h, password: dbsecret-123}\nusers:\n  bob: {password: " + secret + "}\n  eve: {password: [listsecret]}\n"
	err := (&Error{mustFail(t, text)}).Error()
	for _, s := range []string{secret, "dbsecret-123", "listsecret"} {
		if strings.Contains(err, s) {
			t.Errorf("problems quote the password %q:\n%s", s, err)
		}
	}
}

// TestCacheSection: the cache is off unless configured, and an unquoted
// YAML off is the mode "off", not a boolean.
func TestCacheSection(t *testing.T) {
	if got := mustParse(t, minimal).Cache.Mode; got != cache.ModeOff {
		t.Fatalf("default cache.mode %q, want off", got)
	}
	for _, mode := range []cache.Mode{cache.ModeOff, cache.ModeRules, cache.ModeAuto} {
		if got := mustParse(t, withMinimal("cache: {mode: "+string(mode)+"}\n")).Cache.Mode; got != mode {
			t.Fatalf("cache.mode %s parsed as %q", mode, got)
		}
	}
}

// TestDatabaseCacheModes: a database's cache_mode overrides cache.mode
// for it (the wildcard's for names without an entry; empty inherits),
// and the cache is built (CacheOn) as soon as one database caches, even
// with cache.mode off; admission (CacheAuto) as soon as one is in auto.
func TestDatabaseCacheModes(t *testing.T) {
	dbs := func(global string, modes ...string) string {
		text := "users: {alice: {password: p}}\ncache: {mode: " + global + "}\ndatabases:\n"
		for i, m := range modes {
			name := fmt.Sprintf("db%d", i)
			if i == len(modes)-1 {
				name = `"*"`
			}
			text += fmt.Sprintf("  %s: {host: h, cache_mode: %s}\n", name, m)
		}
		return text
	}
	for _, tc := range []struct {
		name          string
		text          string
		wantOn, wantA bool
		// each database's mode: db0, db1, ..., then "other" (the wildcard's)
		want []cache.Mode
	}{
		{"all inherit off", dbs("off", `""`, `""`), false, false, []cache.Mode{"off", "off"}},
		{"global off, one rules", dbs("off", "rules", `""`), true, false, []cache.Mode{"rules", "off"}},
		{"global off, wildcard auto", dbs("off", `""`, "auto"), true, true, []cache.Mode{"off", "auto"}},
		{"global rules, one off unquoted", dbs("rules", "off", `""`), true, false, []cache.Mode{"off", "rules"}},
		{"global rules, every database off", dbs("rules", "off", "off"), false, false, []cache.Mode{"off", "off"}},
		{"global auto, one rules", dbs("auto", "rules", `""`), true, true, []cache.Mode{"rules", "auto"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := mustParse(t, tc.text)
			if c.CacheOn() != tc.wantOn || c.CacheAuto() != tc.wantA {
				t.Errorf("CacheOn %v CacheAuto %v; want %v %v", c.CacheOn(), c.CacheAuto(), tc.wantOn, tc.wantA)
			}
			for i, want := range tc.want {
				name := fmt.Sprintf("db%d", i)
				if i == len(tc.want)-1 {
					name = "other" // served by the wildcard
				}
				if got := c.Proxy.CacheModeFor(name, c.Cache.Mode); got != want {
					t.Errorf("mode of %s = %q; want %q", name, got, want)
				}
			}
		})
	}
}
