package pgbouncer_test

import (
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/config/pgbouncer"
	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/proxy"
	"github.com/pgone/pgone/proxy/auth"
)

// TestImportRealisticConfig translates a production-like pgbouncer.ini and
// its userlist (found through auth_file), loads the result with
// config.Parse (strict: an invented key fails) and checks the values and
// the exact list of what was not carried over.
func TestImportRealisticConfig(t *testing.T) {
	res, err := pgbouncer.Import(filepath.Join("testdata", "pgbouncer.ini"), "")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(res.YAML)
	if err != nil {
		t.Fatalf("generated config does not load: %v\n%s", err, res.YAML)
	}
	p := cfg.Proxy
	check := func(name string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	check("listen", p.Listen, "0.0.0.0:6432")
	check("auth_method", p.AuthMethod, auth.MD5)
	check("limits.max_client_conn", p.Limits.MaxClientConn, 2000)
	check("limits.max_message_size", p.Limits.MaxMessageSize, 1048576)
	check("limits.query_timeout", p.Limits.QueryTimeout, 30*time.Second)
	check("limits.idle_transaction_timeout", p.Limits.IdleTransactionTimeout, 10*time.Minute)
	check("limits.client_idle_timeout", p.Limits.ClientIdleTimeout, time.Duration(0))
	check("limits.client_login_timeout", p.Limits.ClientLoginTimeout, time.Minute)
	check("tls.mode", p.TLS.Mode, proxy.TLSAllow)
	check("tls.cert_file", p.TLS.CertFile, "/etc/pgbouncer/server.crt")
	check("tls.key_file", p.TLS.KeyFile, "/etc/pgbouncer/server.key")

	check("databases", strings.Join(slices.Sorted(maps.Keys(p.Databases)), ","), "*,app,legacy,reports")
	check("app", p.Databases["app"], proxy.Database{Host: "10.0.0.10", Port: 5432, DBName: "app_production", PoolSize: 40, Consistency: proxy.ReadYourWrites})
	check("reports", p.Databases["reports"], proxy.Database{Host: "10.0.0.11", Port: 5432, DBName: "app_production", User: "reporter", Password: "rep secret", PoolMode: pool.ModeSession, Consistency: proxy.ReadYourWrites})
	check("legacy", p.Databases["legacy"], proxy.Database{Host: "10.0.0.12", Port: 5432, DBName: "legacy", Consistency: proxy.ReadYourWrites})
	check("*", p.Databases["*"], proxy.Database{Host: "10.0.0.20", Port: 5432, Consistency: proxy.ReadYourWrites})

	check("users", strings.Join(slices.Sorted(maps.Keys(p.Users)), ","), "admin,alice,bob,carol,reporter")
	check("alice", p.Users["alice"], proxy.User{Password: "alice-secret", PoolMode: pool.ModeSession})
	check("bob", p.Users["bob"].Password, "md53175bce1d3201d16594cebf9d7eb3f9d")
	check("carol", auth.IsSCRAMVerifier(p.Users["carol"].Password), true)
	check("admin", p.Users["admin"].Password, `admin "quoted" secret`)
	check("admin_users", strings.Join(p.AdminUsers, ","), "admin")
	check("auth_query", p.AuthQuery, proxy.AuthQuery{User: "pgbouncer_auth", Query: "SELECT usename, passwd FROM pgbouncer.get_auth($1)"})

	pc := cfg.Pool
	check("pool.mode", pc.Mode, pool.ModeTransaction)
	check("pool.pool_size", pc.PoolSize, 25)
	check("pool.min_pool_size", pc.MinPoolSize, 5)
	check("pool.reserve_pool_size", pc.ReservePoolSize, 5)
	check("pool.reserve_pool_timeout", pc.ReservePoolTimeout, 3*time.Second)
	check("pool.server_lifetime", pc.ServerLifetime, time.Hour)
	check("pool.server_idle_timeout (pgone default: 0 untranslated)", pc.ServerIdleTimeout, 10*time.Minute)
	check("pool.query_wait_timeout", pc.QueryWaitTimeout, time.Minute)
	check("pool.server_connect_timeout", pc.ServerConnectTimeout, 2500*time.Millisecond)
	check("pool.server_tls", pc.ServerTLS, pool.ServerTLS{SSLMode: "verify-full", RootCert: "/etc/ssl/certs/ca.pem"})

	want := []string{
		"[pgbouncer] logfile",
		"[pgbouncer] pidfile",
		"[pgbouncer] unix_socket_dir",
		"[pgbouncer] stats_users",
		"[pgbouncer] server_reset_query",
		"[pgbouncer] ignore_startup_parameters",
		"[pgbouncer] max_db_connections",
		"[pgbouncer] server_idle_timeout",
		"[pgbouncer] server_tls_cert_file",
		"[pgbouncer] server_tls_key_file",
		"[pgbouncer] client_tls_ca_file",
		"[pgbouncer] auth_user",
		"[pgbouncer] admin_users: postgres",
		"[databases] reports: connect_query",
		"[databases] legacy: host",
		"[databases] legacy: max_db_connections",
		"[databases] local",
		"[users] alice: max_user_connections",
		"[peers] 1",
		`userlist "bob"`, // carol's SCRAM verifier works by passthrough
	}
	var got []string
	for _, u := range res.Untranslated {
		got = append(got, u.Key)
		if u.Reason == "" {
			t.Errorf("%s: no reason", u.Key)
		}
		if strings.Contains(u.Reason, "alice-secret") || strings.Contains(u.Reason, "rep secret") {
			t.Errorf("%s: reason quotes a password: %s", u.Key, u.Reason)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("untranslated keys:\n got %q\nwant %q", got, want)
	}
	reasons := map[string]string{}
	for _, u := range res.Untranslated {
		reasons[u.Key] = u.Reason
	}
	for key, part := range map[string]string{
		"[pgbouncer] server_idle_timeout": "default 10m",
		"[databases] legacy: host":        "kept 10.0.0.12, left out 10.0.0.13",
		`userlist "bob"`:                  "an md5 hash",
		"[pgbouncer] auth_user":           "set auth_query.password",
	} {
		if !strings.Contains(reasons[key], part) {
			t.Errorf("%s: reason %q lacks %q", key, reasons[key], part)
		}
	}
}

// TestImportUserlistArgumentWinsOverAuthFile: the userlist given on the
// command line is read, not the ini's auth_file.
func TestImportUserlistArgumentWinsOverAuthFile(t *testing.T) {
	dir := t.TempDir()
	ini := filepath.Join(dir, "pgbouncer.ini")
	list := filepath.Join(dir, "other.txt")
	write(t, ini, "[databases]\ndb = host=h\n[pgbouncer]\nlisten_addr = 127.0.0.1\nauth_file = missing.txt\n")
	write(t, list, `"u" "pw"`+"\n")
	res, err := pgbouncer.Import(ini, list)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(res.YAML)
	if err != nil {
		t.Fatalf("%v\n%s", err, res.YAML)
	}
	if cfg.Proxy.Users["u"].Password != "pw" || len(res.Untranslated) != 0 {
		t.Errorf("users %v, untranslated %v", cfg.Proxy.Users, res.Untranslated)
	}
	if _, err := pgbouncer.Import(ini, ""); err == nil || !strings.Contains(err.Error(), "missing.txt") {
		t.Errorf("missing auth_file: err = %v, want it named", err)
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestTranslateKeys maps single settings: each case is an ini fragment, a
// YAML fragment the output must contain, and the untranslated keys.
func TestTranslateKeys(t *testing.T) {
	const base = "[databases]\ndb = host=h\n[pgbouncer]\nlisten_addr = 127.0.0.1\n"
	cases := []struct {
		name, ini, userlist, yaml string
		untranslated              []string
	}{
		{"auth md5", "auth_type = md5", "", "auth_method: md5", nil},
		{"auth scram", "auth_type = scram-sha-256", "", "auth_method: scram-sha-256", nil},
		{"auth plain", "auth_type = plain", "", "auth_method: password", nil},
		{"auth trust", "auth_type = trust", `"u" ""`, "auth_method: trust", nil},
		{"auth any", "auth_type = any", "", "listen:", []string{"[pgbouncer] auth_type"}},
		{"auth hba", "auth_type = hba\nauth_hba_file = /etc/hba", "", "listen:", []string{"[pgbouncer] auth_type", "[pgbouncer] auth_hba_file"}},
		{"empty secret without trust", "auth_type = md5", `"u" ""`, "listen:", []string{`userlist "u"`}},
		{"statement mode", "pool_mode = statement", "", "listen:", []string{"[pgbouncer] pool_mode"}},
		{"client tls verify-full", "client_tls_sslmode = verify-full", "", "mode: require", []string{"[pgbouncer] client_tls_sslmode"}},
		{"client tls disable", "client_tls_sslmode = disable", "", "mode: disable", nil},
		{"listen list", "listen_addr = 10.0.0.1, 10.0.0.2\nlisten_port = 7432", "", "listen: 10.0.0.1:7432", []string{"[pgbouncer] listen_addr"}},
		{"ipv6 listen", "listen_addr = ::1", "", `listen: '[::1]:6432'`, nil},
		{"times with units", "query_timeout = 500ms\nserver_lifetime = 2h", "", "query_timeout: 500ms", nil},
		{"server lifetime 0", "server_lifetime = 0", "", "listen:", []string{"[pgbouncer] server_lifetime"}},
		{"unknown key", "tcp_keepalive = 1", "", "listen:", []string{"[pgbouncer] tcp_keepalive"}},
		{"database pool_mode statement", "[databases]\nx = host=h pool_mode=statement", "", "x:\n    host: h", []string{"[databases] x: pool_mode"}},
		{"password without user", "[databases]\nx = host=h password=p", "", "x:\n    host: h", []string{"[databases] x: password"}},
		{"forced user password from userlist", "[databases]\nx = host=h user=u", `"u" "pw"`, "user: u\n    password: pw", nil},
		{"forced user md5 from userlist", "[databases]\nx = host=h user=u", `"u" "md5` + strings.Repeat("a", 32) + `"`, "user: u\n", []string{"[databases] x: user", `userlist "u"`}},
		{"auth_user from userlist", "auth_user = a\nauth_dbname = authdb", `"a" "a-pw"`, "auth_query:\n  user: a # from auth_user = a\n  database: authdb # from auth_dbname = authdb\n  password: a-pw", nil},
		{"auth_query without auth_user", "auth_query = SELECT 1", "", "listen:", []string{"[pgbouncer] auth_query"}},
		{"per-database auth_user", "[databases]\nx = host=h auth_user=a", "", "x:\n    host: h", []string{"[databases] x: auth_user"}},
		{"reserved name", "[databases]\npgone = host=h", "", "listen:", []string{"[databases] pgone"}},
		{"quoted connstring", "[databases]\nx = host=h password='it''s a \\'secret\\'' user=o", "", `password: it's a 'secret'`, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var list []byte
			if tc.userlist != "" {
				list = []byte(tc.userlist + "\n")
			}
			res, err := pgbouncer.Translate([]byte(base+tc.ini+"\n"), list)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(res.YAML), tc.yaml) {
				t.Errorf("output lacks %q:\n%s", tc.yaml, res.YAML)
			}
			var got []string
			for _, u := range res.Untranslated {
				got = append(got, u.Key)
			}
			if !slices.Equal(got, tc.untranslated) {
				t.Errorf("untranslated = %q, want %q", got, tc.untranslated)
			}
		})
	}
}
