package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
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
