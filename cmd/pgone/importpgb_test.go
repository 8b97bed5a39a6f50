package main

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgone/pgone/internal/pgtest"
)

// TestImportPgBouncerCommand checks the command line: YAML on stdout (or
// -o), the untranslated keys on stderr, exit 1 when the result needs
// editing, 2 on usage errors.
func TestImportPgBouncerCommand(t *testing.T) {
	dir := t.TempDir()
	ini := filepath.Join(dir, "pgbouncer.ini")
	mustWrite(t, ini, "[databases]\napp = host=db1 dbname=app\n[pgbouncer]\nlisten_addr = *\nauth_type = md5\nauth_file = users.txt\nstats_users = stats\n")
	mustWrite(t, filepath.Join(dir, "users.txt"), `"alice" "alice-pw"`+"\n")

	code, stdout, stderr := runCmd("import-pgbouncer", ini)
	if code != 0 || !strings.Contains(stdout, "auth_method: md5") || !strings.Contains(stdout, "alice-pw") {
		t.Fatalf("code %d, stdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if stderr != "not translated: [pgbouncer] stats_users: pgone has no read-only console role; add these users to admin_users to give them the whole console\n" {
		t.Errorf("stderr = %q", stderr)
	}

	out := filepath.Join(dir, "pgone.yaml")
	if code, stdout, _ := runCmd("import-pgbouncer", "-o", out, ini); code != 0 || stdout != "" {
		t.Errorf("-o: code %d, stdout %q", code, stdout)
	}
	if code, _, stderr := runCmd("check", "--config", out); code != 0 {
		t.Errorf("pgone check on the import: code %d: %s", code, stderr)
	}

	// No userlist at all: users are required, so the result needs editing.
	bare := filepath.Join(dir, "bare.ini")
	mustWrite(t, bare, "[databases]\napp = host=db1\n[pgbouncer]\nlisten_addr = 127.0.0.1\n")
	code, _, stderr = runCmd("import-pgbouncer", bare)
	if code != 1 || !strings.Contains(stderr, "the result needs editing: users") {
		t.Errorf("no users: code %d, stderr %q", code, stderr)
	}
	if code, _, _ := runCmd("import-pgbouncer"); code != 2 {
		t.Errorf("no arguments: code %d, want 2", code)
	}
	if code, _, stderr := runCmd("import-pgbouncer", filepath.Join(dir, "nope.ini")); code != 1 || !strings.Contains(stderr, "nope.ini") {
		t.Errorf("missing file: code %d, stderr %q", code, stderr)
	}
}

// TestImportPgBouncerServesRealPostgres imports a pgbouncer.ini and a
// userlist.txt holding the three kinds of secret (plaintext, md5, a SCRAM
// verifier copied from pg_authid) and auth_user, starts pgone on the result
// in front of a real PostgreSQL, and logs in with each userlist password
// and as a user only the server knows.
func TestImportPgBouncerServesRealPostgres(t *testing.T) {
	c := pgtest.New(t, pgtest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, sql := range []string{
		"CREATE ROLE app_user LOGIN PASSWORD 'app-pw'",
		"CREATE ROLE reporter LOGIN PASSWORD 'rep-pw'",
		"CREATE ROLE carol LOGIN PASSWORD 'carol-pw'",
		"CREATE ROLE dave LOGIN PASSWORD 'dave-pw'", // only on the server: found by auth_query
	} {
		if err := c.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	carolSecret := scramSecretOf(ctx, t, c, "carol")
	bobMD5 := md5.Sum([]byte("bob-pw" + "bob"))

	dir := t.TempDir()
	ini := filepath.Join(dir, "pgbouncer.ini")
	mustWrite(t, ini, fmt.Sprintf(`[databases]
appdb = host=127.0.0.1 port=%[1]d dbname=postgres
reports = host=127.0.0.1 port=%[1]d dbname=postgres user=reporter password=rep-pw pool_size=2

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = 0
auth_type = md5
auth_file = userlist.txt
auth_user = postgres
pool_mode = transaction
default_pool_size = 4
server_tls_sslmode = disable
`, c.Primary.Port))
	mustWrite(t, filepath.Join(dir, "userlist.txt"), fmt.Sprintf("\"app_user\" \"app-pw\"\n\"bob\" \"md5%s\"\n\"carol\" \"%s\"\n\"postgres\" \"%s\"\n",
		hex.EncodeToString(bobMD5[:]), carolSecret, pgtest.SuperPassword))

	out := filepath.Join(dir, "pgone.yaml")
	code, _, stderr := runCmd("import-pgbouncer", "-o", out, ini)
	if code != 0 {
		t.Fatalf("import: code %d: %s", code, stderr)
	}
	yaml, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	// Keep the test off the default metrics port other tests may hold.
	rs, err := startServeConfig(t, string(yaml)+"http:\n  listen: \"127.0.0.1:0\"\n", serveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(rs.proxyAddr)

	for _, tc := range []struct{ user, password, database, wantUser string }{
		{"app_user", "app-pw", "appdb", "app_user"},  // plaintext secret, logs in to the server as itself
		{"bob", "bob-pw", "reports", "reporter"},     // md5 secret, server login as the forced user
		{"carol", "carol-pw", "reports", "reporter"}, // SCRAM secret (md5 method falls to SCRAM, as PostgreSQL)
		{"carol", "carol-pw", "appdb", "carol"},      // SCRAM secret, server login as itself by passthrough
		{"dave", "dave-pw", "appdb", "dave"},         // not in the userlist: auth_query, then passthrough
	} {
		dsn := fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=%s sslmode=disable", host, port, tc.user, tc.password, tc.database)
		if got := currentUser(ctx, t, dsn); got != tc.wantUser {
			t.Errorf("%s on %s: current_user = %q, want %q", tc.user, tc.database, got, tc.wantUser)
		}
		_, err := pgconn.Connect(ctx, strings.Replace(dsn, "password="+tc.password, "password=wrong", 1))
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "28P01" {
			t.Errorf("%s with a wrong password: err = %v, want 28P01", tc.user, err)
		}
	}
}

func currentUser(ctx context.Context, t *testing.T, dsn string) string {
	t.Helper()
	conn, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		t.Errorf("connect: %v", err)
		return ""
	}
	defer conn.Close(ctx)
	rows, err := conn.Exec(ctx, "SELECT current_user").ReadAll()
	if err != nil || len(rows) != 1 || len(rows[0].Rows) != 1 {
		t.Errorf("SELECT current_user: %v", err)
		return ""
	}
	return string(rows[0].Rows[0][0])
}

// scramSecretOf reads a role's SCRAM verifier as a userlist.txt made from
// pg_shadow would hold it.
func scramSecretOf(ctx context.Context, t *testing.T, c *pgtest.Cluster, role string) string {
	t.Helper()
	conn, err := pgconn.Connect(ctx, c.Primary.DSN(pgtest.SuperUser, pgtest.SuperPassword, "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Exec(ctx, fmt.Sprintf("SELECT rolpassword FROM pg_authid WHERE rolname = '%s'", role)).ReadAll()
	if err != nil || len(rows[0].Rows) != 1 {
		t.Fatalf("reading %s's secret: %v", role, err)
	}
	return string(rows[0].Rows[0][0])
}

func mustWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
