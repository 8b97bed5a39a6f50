package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pgone/pgone/config"
)

// runCmd runs the command line in-process and returns its exit code and output.
func runCmd(args ...string) (code int, stdout, stderr string) {
	var out, errw bytes.Buffer
	code = run(args, &out, &errw)
	return code, out.String(), errw.String()
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const goodConfig = `listen: "127.0.0.1:6432"
databases:
  app:
    host: 127.0.0.1
    port: 5432
users:
  alice:
    password: alice-secret
`

// badConfig has an unknown key, a value of the wrong type and two values
// out of range, in different sections.
const badConfig = `listen: "127.0.0.1:6432"
no_such_key: 1
limits:
  max_client_conn: -5
databases:
  app:
    host: 127.0.0.1
    port: 70000
users:
  alice:
    password: alice-secret
pool:
  pool_size: lots
`

func TestCheckReportsEveryProblemWithItsKeyPath(t *testing.T) {
	t.Parallel()
	path := writeFile(t, "bad.yaml", badConfig)
	code, stdout, stderr := runCmd("check", "--config", path)
	if code != 1 {
		t.Fatalf("exit code %d, want 1; stderr:\n%s", code, stderr)
	}
	if strings.Contains(stdout, "ok") {
		t.Fatalf("stdout says ok for a bad config: %q", stdout)
	}
	lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
	for _, key := range []string{"no_such_key", "limits.max_client_conn", "databases.app.port", "pool.pool_size"} {
		found := false
		for _, l := range lines {
			if strings.HasPrefix(l, path+": "+key+": ") {
				found = true
			}
		}
		if !found {
			t.Errorf("no line for key %s in:\n%s", key, stderr)
		}
	}
	// Every line is one of the problems config.Load finds, in its order.
	_, err := config.Load(path)
	var ce *config.Error
	if !errors.As(err, &ce) {
		t.Fatalf("config.Load: %v, want *config.Error", err)
	}
	if len(lines) != len(ce.Problems) {
		t.Fatalf("%d lines for %d problems:\n%s", len(lines), len(ce.Problems), stderr)
	}
	for i, p := range ce.Problems {
		if want := path + ": " + p.String(); lines[i] != want {
			t.Errorf("line %d = %q, want %q", i, lines[i], want)
		}
	}
}

func TestCheckAcceptsGoodConfig(t *testing.T) {
	t.Parallel()
	for name, content := range map[string]string{"minimal": goodConfig, "example": readExample(t)} {
		path := writeFile(t, name+".yaml", content)
		code, stdout, stderr := runCmd("check", "--config", path)
		if code != 0 {
			t.Errorf("%s: exit code %d, want 0; stderr:\n%s", name, code, stderr)
		}
		if want := path + ": ok\n"; stdout != want {
			t.Errorf("%s: stdout %q, want %q", name, stdout, want)
		}
		if stderr != "" {
			t.Errorf("%s: stderr %q, want nothing", name, stderr)
		}
	}
}

// readExample is the documented example config, which must stay valid.
func readExample(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "configs", "pgone.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCheckUsageErrors(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"check"}, 2},                      // no --config
		{[]string{"check", "--no-such-flag"}, 2},    // bad flag
		{[]string{"check", "--config", missing}, 1}, // unreadable file
		{[]string{"frobnicate"}, 2},                 // unknown command
		{nil, 2},                                    // no command
	} {
		code, _, stderr := runCmd(tc.args...)
		if code != tc.code {
			t.Errorf("%q: exit code %d, want %d", tc.args, code, tc.code)
		}
		if stderr == "" {
			t.Errorf("%q: nothing on stderr", tc.args)
		}
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	code, stdout, _ := runCmd("version")
	if code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if !strings.HasPrefix(stdout, "pgone ") || len(strings.TrimSpace(stdout)) <= len("pgone") {
		t.Fatalf("version printed %q, want \"pgone <version>\"", stdout)
	}
}

// TestCheckWarnsWhenSplitCannotBeMonitored: replicas with no server user
// are monitored as the first user with a plaintext password; when every
// user has a hash or verifier the split cannot run: check still accepts
// the file but says so, with the key path.
func TestCheckWarnsWhenSplitCannotBeMonitored(t *testing.T) {
	t.Parallel()
	const withReplica = `databases:
  app:
    host: 127.0.0.1
    replicas:
      - host: 127.0.0.2
users:
  alice:
    password: %s
pool:
  mode: transaction
`
	for _, tc := range []struct {
		password string
		warn     bool
	}{
		{"alice-secret", false},
		{"md5" + strings.Repeat("0a", 16), true},
	} {
		path := writeFile(t, "split.yaml", strings.Replace(withReplica, "%s", tc.password, 1))
		code, stdout, stderr := runCmd("check", "--config", path)
		if code != 0 || stdout != path+": ok\n" {
			t.Errorf("password %q: exit %d, stdout %q, stderr %q; want 0 and ok", tc.password, code, stdout, stderr)
		}
		want := path + ": warning: databases.app.replicas: the read/write split is off"
		if got := strings.HasPrefix(stderr, want); got != tc.warn {
			t.Errorf("password %q: stderr %q; want a warning starting %q: %v", tc.password, stderr, want, tc.warn)
		}
	}
}

// checkWarnings runs `pgone check` on content, which must be accepted, and
// returns its warning lines without the path prefix.
func checkWarnings(t *testing.T, content string) []string {
	t.Helper()
	path := writeFile(t, "warn.yaml", content)
	code, stdout, stderr := runCmd("check", "--config", path)
	if code != 0 || stdout != path+": ok\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 0 and ok", code, stdout, stderr)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimRight(stderr, "\n"), "\n") {
		if l == "" {
			continue
		}
		w, ok := strings.CutPrefix(l, path+": warning: ")
		if !ok {
			t.Fatalf("stderr line %q is not a warning", l)
		}
		out = append(out, w)
	}
	return out
}

// wantWarning checks that exactly the warnings starting with prefix are
// present: one when want, none otherwise.
func wantWarning(t *testing.T, name string, got []string, prefix string, want bool) {
	t.Helper()
	n := 0
	for _, w := range got {
		if strings.HasPrefix(w, prefix) {
			n++
		}
	}
	if want && n != 1 || !want && n != 0 {
		t.Errorf("%s: %d warnings starting %q in %q, want %v", name, n, prefix, got, want)
	}
}

// TestCheckWarnsTrustBeyondLoopback: a trust user needs no password, so a
// listener reachable from other hosts lets anyone in as that user.
func TestCheckWarnsTrustBeyondLoopback(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, listen, global, user string
		key                        string // "" for no warning
	}{
		{"all interfaces, user trust", "0.0.0.0:6432", "", "trust", "users.bob.auth_method"},
		{"empty host, global trust", ":6432", "trust", "", "auth_method"},
		{"ipv6 any, user trust", "[::]:6432", "", "trust", "users.bob.auth_method"},
		{"public address, global trust", "192.0.2.7:6432", "trust", "", "auth_method"},
		{"host name, user trust", "db.example.com:6432", "", "trust", "users.bob.auth_method"},
		{"loopback, trust", "127.0.0.1:6432", "trust", "", ""},
		{"ipv6 loopback, trust", "[::1]:6432", "", "trust", ""},
		{"localhost, trust", "localhost:6432", "trust", "", ""},
		{"all interfaces, scram", "0.0.0.0:6432", "", "", ""},
		{"all interfaces, user overrides global trust", "0.0.0.0:6432", "trust", "scram-sha-256", ""},
	} {
		cfg := fmt.Sprintf("listen: %q\ndatabases:\n  app:\n    host: 127.0.0.1\nusers:\n  bob:\n    password: bob-secret\n", tc.listen)
		if tc.user != "" {
			cfg += "    auth_method: " + tc.user + "\n"
		}
		if tc.global != "" {
			cfg += "auth_method: " + tc.global + "\n"
		}
		got := checkWarnings(t, cfg)
		if tc.key == "" {
			wantWarning(t, tc.name, got, "", false)
			continue
		}
		wantWarning(t, tc.name, got, tc.key+": listen "+strconv.Quote(tc.listen)+" is reachable beyond loopback and user(s) bob log in with auth_method trust", true)
	}
}

// TestCheckWarnsHTTPBeyondLoopback: /metrics and /debug/pprof have no
// authentication.
func TestCheckWarnsHTTPBeyondLoopback(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		listen string
		pprof  bool
		want   string // "" for no warning
	}{
		{"0.0.0.0:9930", false, "serves /metrics, /healthz and /readyz without authentication"},
		{":9930", true, "serves /metrics, /healthz and /readyz and /debug/pprof without authentication"},
		{"10.1.2.3:9930", false, "serves /metrics"},
		{"127.0.0.1:9930", true, ""},
		{"[::1]:9930", false, ""},
		{"localhost:0", false, ""},
	} {
		cfg := goodConfig + fmt.Sprintf("http:\n  listen: %q\n  pprof: %v\n", tc.listen, tc.pprof)
		got := checkWarnings(t, cfg)
		prefix := "http.listen: " + strconv.Quote(tc.listen) + " is reachable beyond loopback and " + tc.want
		wantWarning(t, tc.listen, got, "http.listen:", tc.want != "")
		if tc.want != "" {
			wantWarning(t, tc.listen, got, prefix, true)
		}
	}
}

// TestCheckWarnsSplitImpossible: replicas take reads only in transaction
// mode, and the wildcard database's replicas are never monitored. pool.mode
// defaults to session, so a split configured with the defaults is off.
func TestCheckWarnsSplitImpossible(t *testing.T) {
	t.Parallel()
	const base = `databases:
  app:
    host: 127.0.0.1
    replicas:
      - host: 127.0.0.2
`
	const users = "users:\n  alice:\n    password: alice-secret\n"
	for _, tc := range []struct {
		name, content, prefix string
		warn                  bool
	}{
		{"default session mode", base + users, "databases.app.replicas: the read/write split is off: pool.mode is session", true},
		{"database in session mode", base + "    pool_mode: session\n" + users + "pool:\n  mode: transaction\n", "databases.app.replicas: the read/write split is off: databases.app.pool_mode is session", true},
		{"transaction mode", base + users + "pool:\n  mode: transaction\n", "databases.app.replicas:", false},
		{"database in transaction mode", base + "    pool_mode: transaction\n" + users, "databases.app.replicas:", false},
		{"a user in transaction mode", base + users + "    pool_mode: transaction\n", "databases.app.replicas:", false},
		{"primary_only says replicas are not for reads", base + "    consistency: primary_only\n" + users, "databases.app.replicas:", false},
		{"wildcard database", strings.Replace(base, "  app:", "  \"*\":", 1) + users + "pool:\n  mode: transaction\n", "databases.*.replicas: the read/write split is off: replicas of the wildcard database are never used", true},
	} {
		wantWarning(t, tc.name, checkWarnings(t, tc.content), tc.prefix, tc.warn)
	}
}
