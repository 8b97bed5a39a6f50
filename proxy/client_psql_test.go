package proxy_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// libpqURL is a libpq connection URI; with password "" the password is
// left to PGPASSWORD.
func libpqURL(host string, port int, user, password, db string) string {
	u := url.URL{Scheme: "postgresql", Host: fmt.Sprintf("%s:%d", host, port), Path: "/" + db, RawQuery: "sslmode=disable&connect_timeout=10"}
	if password != "" {
		u.User = url.UserPassword(user, password)
	} else {
		u.User = url.User(user)
	}
	return u.String()
}

func (p *testProxy) appURL() string {
	return libpqURL(p.Host, p.Port, appUser, appPassword, appDB)
}

func directURL() string {
	return libpqURL(cluster.Primary.Host, cluster.Primary.Port, appUser, appPassword, appDB)
}

// libpqEnv is the environment for libpq tools: no PG* variable of the
// caller leaks in, messages are in English, plus extra.
func libpqEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, append([]string{"LC_ALL=C"}, extra...)...)
}

type psqlResult struct {
	stdout, stderr string
	code           int
}

// runPsql runs psql -X (no psqlrc) on dsn with args and stdin.
func runPsql(t *testing.T, dsn, stdin string, env []string, args ...string) psqlResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "psql", append([]string{"-X", "-d", dsn}, args...)...)
	cmd.Env = libpqEnv(env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res := psqlResult{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("psql: %v", err)
	}
	return res
}

// psqlBoth runs the same psql invocation through pgone and directly and
// requires identical output and exit status. It returns pgone's result.
func psqlBoth(t *testing.T, p *testProxy, stdin string, args ...string) psqlResult {
	t.Helper()
	got := runPsql(t, p.appURL(), stdin, nil, args...)
	want := runPsql(t, directURL(), stdin, nil, args...)
	if got != want {
		t.Fatalf("psql %q through pgone:\n%+v\nPostgreSQL directly:\n%+v", args, got, want)
	}
	return got
}

func TestPsqlMultiStatementCommand(t *testing.T) {
	t.Parallel()
	p := startProxy(t, nil)
	t.Run("unaligned", func(t *testing.T) {
		t.Parallel()
		res := psqlBoth(t, p, "", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", "SELECT 1; SELECT 2")
		if res.code != 0 || res.stdout != "1\n2\n" {
			t.Fatalf("got %+v, want both results", res)
		}
	})
	t.Run("aligned", func(t *testing.T) {
		t.Parallel()
		res := psqlBoth(t, p, "", "-v", "ON_ERROR_STOP=1", "-c", "SELECT 1 AS one, 'x' AS ex; SELECT g FROM generate_series(1, 3) g; SET TimeZone = 'UTC'; SHOW TimeZone")
		if res.code != 0 || !containsEach(res.stdout, " one | ex ", "(3 rows)", "SET", " UTC") {
			t.Fatalf("got %+v", res)
		}
	})
	t.Run("password from PGPASSWORD", func(t *testing.T) {
		t.Parallel()
		res := runPsql(t, libpqURL(p.Host, p.Port, appUser, "", appDB), "", []string{"PGPASSWORD=" + appPassword},
			"-A", "-t", "-c", "SELECT current_database() || ' ' || current_user")
		if res.code != 0 || res.stdout != appDB+" "+appUser+"\n" {
			t.Fatalf("got %+v", res)
		}
	})
}

func TestPsqlCopyInAndOut(t *testing.T) {
	t.Parallel()
	p := startProxy(t, nil)
	execOnPrimary(t, `DROP TABLE IF EXISTS clpsql_copy; CREATE TABLE clpsql_copy (id int PRIMARY KEY, name text, note text)`)
	dir := t.TempDir()
	var in bytes.Buffer
	const n = 3000
	for i := range n {
		note := `\N`
		if i%3 != 0 {
			note = fmt.Sprintf(`tab\there, newline\nthere, backslash\\, ünï ✓ %d`, i)
		}
		fmt.Fprintf(&in, "%d\tname %d\t%s\n", i, i, note)
	}
	inFile, outFile := filepath.Join(dir, "in.tsv"), filepath.Join(dir, "out.tsv")
	if err := os.WriteFile(inFile, in.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	res := runPsql(t, p.appURL(), "", nil, "-v", "ON_ERROR_STOP=1",
		"-c", fmt.Sprintf(`\copy clpsql_copy FROM '%s'`, inFile),
		"-c", fmt.Sprintf(`\copy (SELECT * FROM clpsql_copy ORDER BY id) TO '%s'`, outFile))
	if res.code != 0 || res.stdout != fmt.Sprintf("COPY %d\nCOPY %d\n", n, n) {
		t.Fatalf("psql \\copy: %+v", res)
	}
	out, err := os.ReadFile(outFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, in.Bytes()) {
		t.Fatalf("\\copy out (%d bytes) differs from what was copied in (%d bytes)", len(out), len(in.Bytes()))
	}
	// The server has the rows, as PostgreSQL itself reports them.
	direct := runPsql(t, directURL(), "", nil, "-c", fmt.Sprintf(`\copy (SELECT * FROM clpsql_copy ORDER BY id) TO '%s'`, outFile+".direct"))
	if direct.code != 0 {
		t.Fatal(direct)
	}
	if want, _ := os.ReadFile(outFile + ".direct"); !bytes.Equal(want, out) {
		t.Fatal("\\copy out through pgone differs from \\copy out directly")
	}
	// A bad line fails the whole \copy with the server's error, and psql goes on.
	bad := filepath.Join(dir, "bad.tsv")
	if err := os.WriteFile(bad, []byte("90001\tok\t\\N\nnot-a-number\tx\ty\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	res = psqlBoth(t, p, "", "-c", fmt.Sprintf(`\copy clpsql_copy FROM '%s'`, bad), "-c", "SELECT count(*) FROM clpsql_copy")
	if !strings.Contains(res.stderr, "invalid input syntax for type integer") || !strings.Contains(res.stdout, fmt.Sprint(n)) {
		t.Fatalf("bad \\copy: %+v", res)
	}
}

func TestPsqlErrorInsideTransaction(t *testing.T) {
	t.Parallel()
	p := startProxy(t, nil)
	const script = "BEGIN;\nSELECT 1/0;\nSELECT 'in aborted transaction';\nROLLBACK;\nSELECT 'after';\n"
	t.Run("ON_ERROR_STOP=0", func(t *testing.T) {
		t.Parallel()
		res := psqlBoth(t, p, script, "-A", "-t", "-v", "ON_ERROR_STOP=0")
		if res.code != 0 || !containsEach(res.stdout, "BEGIN", "ROLLBACK", "after") || strings.Contains(res.stdout, "in aborted transaction") ||
			!containsEach(res.stderr, "ERROR:  division by zero", "current transaction is aborted") {
			t.Fatalf("got %+v", res)
		}
	})
	t.Run("ON_ERROR_STOP=1", func(t *testing.T) {
		t.Parallel()
		res := psqlBoth(t, p, script, "-A", "-t", "-v", "ON_ERROR_STOP=1")
		if res.code != 3 || strings.Contains(res.stdout, "after") || !strings.Contains(res.stderr, "division by zero") {
			t.Fatalf("got %+v", res)
		}
	})
}

func TestPsqlDescribeTable(t *testing.T) {
	t.Parallel()
	p := startProxy(t, nil)
	execOnPrimary(t, `DROP TABLE IF EXISTS clpsql_desc;
		CREATE TABLE clpsql_desc (
			id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
			name text NOT NULL DEFAULT 'anon',
			created timestamptz,
			tags text[],
			score numeric(10, 2) CHECK (score >= 0));
		CREATE INDEX clpsql_desc_name ON clpsql_desc (name);
		COMMENT ON COLUMN clpsql_desc.name IS 'who'`)
	res := psqlBoth(t, p, "", "-v", "ON_ERROR_STOP=1", "-c", `\d clpsql_desc`)
	if res.code != 0 || !containsEach(res.stdout, `Table "public.clpsql_desc"`, "id ", "bigint", "name ", "'anon'::text",
		"created ", "timestamp with time zone", "tags ", "text[]", "score ", "numeric(10,2)", "clpsql_desc_pkey", "clpsql_desc_name", "Check constraints") {
		t.Fatalf("\\d output: %+v", res)
	}
	res = psqlBoth(t, p, "", "-v", "ON_ERROR_STOP=1", "-c", `\d+ clpsql_desc`)
	if res.code != 0 || !strings.Contains(res.stdout, "who") {
		t.Fatalf("\\d+ output: %+v", res)
	}
}
