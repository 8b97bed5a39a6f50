package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/proxy"
)

// The admin console user; "app" is a user without console rights.
const (
	adminUser     = "admin"
	adminPassword = "admin-pw"
)

// observedProxy is pgone with the console's hooks and metrics wired as cmd
// wires them, before Serve.
type observedProxy struct {
	*testProxy
	Reg *prometheus.Registry
}

// startObservedProxy starts pgone like startProxy, with an admin user,
// metrics on a fresh registry and setup run on the Server before Serve.
func startObservedProxy(t *testing.T, mutate func(*config.Config), setup func(*proxy.Server)) *observedProxy {
	t.Helper()
	reg := prometheus.NewRegistry()
	p := serveProxy(t, validConfig(t, adminConfig(), mutate), testLog(), func(p *testProxy) {
		if err := p.Pools.RegisterMetrics(reg); err != nil {
			t.Fatal(err)
		}
		if err := p.Srv.RegisterMetrics(reg); err != nil {
			t.Fatal(err)
		}
		if setup != nil {
			setup(p.Srv)
		}
	})
	return &observedProxy{testProxy: p, Reg: reg}
}

// adminConfig is baseConfig with the console's admin user.
func adminConfig() *config.Config {
	cfg := baseConfig()
	cfg.Proxy.Users[adminUser] = proxy.User{Password: adminPassword}
	cfg.Proxy.AdminUsers = []string{adminUser}
	return cfg
}

// scrape returns the metrics as Prometheus would read them.
func (p *observedProxy) scrape(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(promhttp.HandlerFor(p.Reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %d %v", resp.StatusCode, err)
	}
	return string(body)
}

// console opens a simple-protocol connection to the admin console.
func (p *observedProxy) console(t *testing.T, user, password string) *pgconn.PgConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgconn.Connect(ctx, p.DSN(user, password, proxy.AdminDatabase))
	if err != nil {
		t.Fatalf("console login as %s: %v", user, err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// table is one console answer.
type table struct {
	cols []string
	oids []uint32
	rows []map[string]string
}

// show runs a console command that must succeed with one result.
func show(t *testing.T, c *pgconn.PgConn, sql string) table {
	t.Helper()
	res, err := c.Exec(testCtx(t), sql).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	if len(res) != 1 {
		t.Fatalf("%s: %d results, want 1", sql, len(res))
	}
	var tb table
	for _, fd := range res[0].FieldDescriptions {
		tb.cols = append(tb.cols, fd.Name)
		tb.oids = append(tb.oids, fd.DataTypeOID)
	}
	for _, r := range res[0].Rows {
		m := map[string]string{}
		for i, v := range r {
			m[tb.cols[i]] = string(v)
		}
		tb.rows = append(tb.rows, m)
	}
	return tb
}

// consoleErr runs a console command that must fail, and returns its error.
func consoleErr(t *testing.T, c *pgconn.PgConn, sql string) *pgconn.PgError {
	t.Helper()
	_, err := c.Exec(testCtx(t), sql).ReadAll()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		t.Fatalf("%s: error %v, want a PostgreSQL error", sql, err)
	}
	return pe
}

// row returns the row whose columns have the given values, or nil.
func (tb table) row(kv ...string) map[string]string {
next:
	for _, r := range tb.rows {
		for i := 0; i+1 < len(kv); i += 2 {
			if r[kv[i]] != kv[i+1] {
				continue next
			}
		}
		return r
	}
	return nil
}

func (tb table) count(kv ...string) int {
	n := 0
	for _, r := range tb.rows {
		ok := true
		for i := 0; i+1 < len(kv); i += 2 {
			ok = ok && r[kv[i]] == kv[i+1]
		}
		if ok {
			n++
		}
	}
	return n
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func num(t *testing.T, r map[string]string, col string) int64 {
	t.Helper()
	if r == nil {
		t.Fatalf("no row for column %s", col)
	}
	n, err := strconv.ParseInt(r[col], 10, 64)
	if err != nil {
		t.Fatalf("column %s = %q: %v", col, r[col], err)
	}
	return n
}

// The column sets of PgBouncer 1.18+, in order.
var (
	poolsCols = []string{"database", "user", "cl_active", "cl_waiting", "cl_active_cancel_req", "cl_waiting_cancel_req",
		"sv_active", "sv_active_cancel", "sv_being_canceled", "sv_idle", "sv_used", "sv_tested", "sv_login",
		"maxwait", "maxwait_us", "pool_mode", "role", "server"}
	connCols = []string{"type", "user", "database", "state", "addr", "port", "local_addr", "local_port",
		"connect_time", "request_time", "wait", "wait_us", "close_needed", "ptr", "link", "remote_pid",
		"tls", "application_name", "prepared_statements"}
	statsCols = []string{"database", "total_xact_count", "total_query_count", "total_received", "total_sent",
		"total_xact_time", "total_query_time", "total_wait_time", "avg_xact_count", "avg_query_count",
		"avg_recv", "avg_sent", "avg_xact_time", "avg_query_time", "avg_wait_time"}
	databasesCols = []string{"name", "host", "port", "database", "force_user", "pool_size", "min_pool_size",
		"reserve_pool", "pool_mode", "max_connections", "current_connections", "paused", "disabled"}
)

func requireCols(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("%s columns:\n got %v\nwant %v", what, got, want)
	}
}

func TestConsoleShowPoolsAndClients(t *testing.T) {
	t.Parallel()
	p := startObservedProxy(t, nil, nil)
	const n = 3
	conns := make([]*pgx.Conn, n)
	for i := range conns {
		conns[i] = connect(t, p.AppDSN()+" application_name=console-test")
		var one int
		if err := conns[i].QueryRow(testCtx(t), "SELECT 1").Scan(&one); err != nil {
			t.Fatal(err)
		}
	}
	admin := p.console(t, adminUser, adminPassword)

	pools := show(t, admin, "SHOW POOLS;")
	requireCols(t, "SHOW POOLS", pools.cols, poolsCols)
	if pools.oids[2] != 23 || pools.oids[0] != 25 {
		t.Errorf("SHOW POOLS types %v: want text for names and int4 for counts", pools.oids)
	}
	r := pools.row("database", appDB, "user", appUser)
	if num(t, r, "cl_active") != n || num(t, r, "sv_active") != n || num(t, r, "sv_idle") != 0 ||
		num(t, r, "cl_waiting") != 0 || r["pool_mode"] != "session" {
		t.Fatalf("SHOW POOLS row %v: want %d clients and %d active servers in session mode", r, n, n)
	}

	clients := show(t, admin, "show clients")
	requireCols(t, "SHOW CLIENTS", clients.cols, connCols)
	if got := clients.count("type", "C", "user", appUser, "database", appDB, "state", "active",
		"addr", "127.0.0.1", "application_name", "console-test"); got != n {
		t.Fatalf("SHOW CLIENTS lists %d app clients, want %d:\n%v", got, n, clients.rows)
	}
	if clients.row("user", adminUser, "database", proxy.AdminDatabase) == nil {
		t.Errorf("SHOW CLIENTS does not list the console session: %v", clients.rows)
	}
	servers := show(t, admin, "SHOW SERVERS")
	requireCols(t, "SHOW SERVERS", servers.cols, connCols)
	if got := servers.count("type", "S", "database", appDB, "user", appUser, "state", "active"); got != n {
		t.Fatalf("SHOW SERVERS lists %d active servers, want %d:\n%v", got, n, servers.rows)
	}
	// Each client's link is its server's ptr.
	for _, c := range clients.rows {
		if c["database"] == appDB && servers.row("ptr", c["link"], "link", c["ptr"]) == nil {
			t.Errorf("client %s links to %s, which is not a server linked back", c["ptr"], c["link"])
		}
	}

	// A client leaving gives its server back to the pool.
	conns[0].Close(testCtx(t))
	eventually(t, "the server to go idle", func() bool {
		r := show(t, admin, "SHOW POOLS").row("database", appDB, "user", appUser)
		return r["cl_active"] == "2" && r["sv_active"] == "2" && r["sv_idle"] == "1"
	})
	if got := show(t, admin, "SHOW SERVERS").count("database", appDB, "state", "idle"); got != 1 {
		t.Errorf("SHOW SERVERS: %d idle servers, want 1", got)
	}
}

func TestConsoleShowPoolsTransactionMode(t *testing.T) {
	t.Parallel()
	p := startObservedProxy(t, func(c *config.Config) {
		c.Pool.Mode = pool.ModeTransaction
		c.Pool.PoolSize = 2
	}, nil)
	for i := 0; i < 3; i++ {
		c := connect(t, p.AppDSN())
		if _, err := c.Exec(testCtx(t), "SELECT 1"); err != nil {
			t.Fatal(err)
		}
	}
	admin := p.console(t, adminUser, adminPassword)
	r := show(t, admin, "SHOW POOLS").row("database", appDB, "user", appUser)
	if num(t, r, "cl_active") != 3 || num(t, r, "sv_active") != 0 || num(t, r, "sv_idle") < 1 || r["pool_mode"] != "transaction" {
		t.Fatalf("SHOW POOLS row %v: want 3 idle clients sharing idle servers", r)
	}
}

func TestConsoleShowStatsCounts(t *testing.T) {
	t.Parallel()
	p := startObservedProxy(t, func(c *config.Config) { c.Pool.PoolSize = 1 }, nil)
	conn := connect(t, p.AppDSN())
	if _, err := conn.Exec(testCtx(t), "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	admin := p.console(t, adminUser, adminPassword)
	before := show(t, admin, "SHOW STATS")
	requireCols(t, "SHOW STATS", before.cols, statsCols)
	for i, oid := range before.oids[1:] {
		if oid != 20 {
			t.Errorf("SHOW STATS column %s has type %d, want int8", statsCols[i+1], oid)
		}
	}
	b := before.row("database", appDB)
	const queries = 5
	for i := 0; i < queries; i++ {
		if _, err := conn.Exec(testCtx(t), "SELECT pg_sleep(0.01)", pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Fatal(err)
		}
	}
	tx, err := conn.Begin(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(testCtx(t), "SELECT 1", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	a := show(t, admin, "SHOW STATS").row("database", appDB)
	// 5 queries, then BEGIN, SELECT, COMMIT: 8 requests in 6 transactions.
	if d := num(t, a, "total_query_count") - num(t, b, "total_query_count"); d != queries+3 {
		t.Errorf("total_query_count grew by %d, want %d", d, queries+3)
	}
	if d := num(t, a, "total_xact_count") - num(t, b, "total_xact_count"); d != queries+1 {
		t.Errorf("total_xact_count grew by %d, want %d", d, queries+1)
	}
	if d := num(t, a, "total_query_time") - num(t, b, "total_query_time"); d < queries*10000 {
		t.Errorf("total_query_time grew by %dus, want at least %dus (pg_sleep)", d, queries*10000)
	}
	for _, col := range []string{"total_received", "total_sent"} {
		if num(t, a, col) <= num(t, b, col) {
			t.Errorf("%s did not grow: %s -> %s", col, b[col], a[col])
		}
	}
	// The averages are over the last complete window: from the pool's start
	// to the first SHOW STATS (the second came within stats_period).
	if got, want := num(t, a, "avg_query_time"), num(t, b, "total_query_time")/num(t, b, "total_query_count"); got != want {
		t.Errorf("avg_query_time %dus, want %dus (total_query_time / total_query_count at the window's end)", got, want)
	}

	// A client that waits for the only server (session mode: conn holds it)
	// adds its wait to total_wait_time.
	waited := make(chan error, 1)
	go func() {
		c, err := pgx.Connect(testCtx(t), p.AppDSN())
		if err == nil {
			c.Close(context.Background())
		}
		waited <- err
	}()
	eventually(t, "a client to wait 20ms for the server", func() bool {
		r := show(t, admin, "SHOW POOLS").row("database", appDB, "user", appUser)
		return num(t, r, "cl_waiting") == 1 && num(t, r, "maxwait")*1000000+num(t, r, "maxwait_us") >= 20000
	})
	conn.Close(context.Background())
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	w := show(t, admin, "SHOW STATS").row("database", appDB)
	if d := num(t, w, "total_wait_time") - num(t, a, "total_wait_time"); d < 20000 {
		t.Errorf("total_wait_time grew by %dus after a client waited at least 20ms", d)
	}
}

func TestConsoleShowDatabasesConfigVersion(t *testing.T) {
	t.Parallel()
	p := startObservedProxy(t, nil, func(s *proxy.Server) { s.SetVersion("9.9.9-test") })
	admin := p.console(t, adminUser, adminPassword)

	dbs := show(t, admin, "SHOW DATABASES")
	requireCols(t, "SHOW DATABASES", dbs.cols, databasesCols)
	r := dbs.row("name", appDB)
	if r == nil || r["host"] != cluster.Primary.Host || r["port"] != strconv.Itoa(cluster.Primary.Port) ||
		r["force_user"] != appUser || r["database"] != appDB || r["pool_mode"] != "session" || r["paused"] != "0" {
		t.Fatalf("SHOW DATABASES row for %s: %v", appDB, r)
	}

	v := show(t, admin, "SHOW VERSION")
	requireCols(t, "SHOW VERSION", v.cols, []string{"version"})
	if len(v.rows) != 1 || v.rows[0]["version"] != "pgone 9.9.9-test" {
		t.Fatalf("SHOW VERSION = %v", v.rows)
	}

	// Without a source from cmd, SHOW CONFIG shows the proxy's own sections.
	cfg := show(t, admin, "SHOW CONFIG")
	requireCols(t, "SHOW CONFIG", cfg.cols, []string{"key", "value", "default", "changeable"})
	requireNoPasswords(t, cfg, p.Cfg)
	if r := cfg.row("key", "pool.pool_size"); r == nil || r["value"] != "20" || r["default"] != "20" || r["changeable"] != "yes" {
		t.Errorf("pool.pool_size row: %v", r)
	}
	if r := cfg.row("key", "listen"); r == nil || r["changeable"] != "no" {
		t.Errorf("listen row: %v", r)
	}
	if r := cfg.row("key", "users.app.password"); r == nil || r["value"] != "***" {
		t.Errorf("users.app.password row: %v, want the value masked", r)
	}
}

// requireNoPasswords fails if any configured password shows in SHOW CONFIG.
func requireNoPasswords(t *testing.T, tb table, cfg *config.Config) {
	t.Helper()
	var secrets []string
	for _, u := range cfg.Proxy.Users {
		if u.Password != "" {
			secrets = append(secrets, u.Password)
		}
	}
	for _, d := range cfg.Proxy.Databases {
		if d.Password != "" {
			secrets = append(secrets, d.Password)
		}
	}
	if len(secrets) == 0 || len(tb.rows) == 0 {
		t.Fatal("nothing to check")
	}
	for _, r := range tb.rows {
		for _, s := range secrets {
			if strings.Contains(r["value"], s) || strings.Contains(r["default"], s) {
				t.Errorf("SHOW CONFIG row %v shows a password", r)
			}
		}
	}
}

func TestConsoleReload(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	var fail atomic.Bool
	p := startObservedProxy(t, nil, func(s *proxy.Server) {
		s.SetReloader(func() error {
			calls.Add(1)
			if fail.Load() {
				return errors.New("pgone.yaml: pool.pool_size: must be at least 1, got 0")
			}
			return nil
		})
		s.SetConfigRows(func() []proxy.ConfigRow {
			return []proxy.ConfigRow{{Key: "pool.pool_size", Value: "7", Default: "20", Changeable: true}, {Key: "x.password", Value: "leak"}}
		})
	})
	admin := p.console(t, adminUser, adminPassword)
	res, err := admin.Exec(testCtx(t), "RELOAD;").ReadAll()
	if err != nil || len(res) != 1 || res[0].CommandTag.String() != "RELOAD" {
		t.Fatalf("RELOAD: %v %v", res, err)
	}
	if calls.Load() != 1 {
		t.Fatalf("reloader called %d times, want 1", calls.Load())
	}
	fail.Store(true)
	pe := consoleErr(t, admin, "reload")
	if pe.Code != "F0000" || !strings.Contains(pe.Message, "pool.pool_size") {
		t.Fatalf("failed RELOAD: %s %q, want F0000 with the reason", pe.Code, pe.Message)
	}
	cfg := show(t, admin, "SHOW CONFIG")
	if r := cfg.row("key", "pool.pool_size"); r == nil || r["value"] != "7" {
		t.Errorf("SHOW CONFIG does not come from SetConfigRows: %v", cfg.rows)
	}
	if r := cfg.row("key", "x.password"); r == nil || r["value"] != "***" {
		t.Errorf("a password key from SetConfigRows was not masked: %v", r)
	}
}

func TestConsoleReloadUnavailable(t *testing.T) {
	t.Parallel()
	p := startObservedProxy(t, nil, nil)
	admin := p.console(t, adminUser, adminPassword)
	if pe := consoleErr(t, admin, "RELOAD"); pe.Code != "55000" {
		t.Fatalf("RELOAD without a reloader: %s %s", pe.Code, pe.Message)
	}
}

func TestConsoleNonAdminGets42501(t *testing.T) {
	t.Parallel()
	p := startObservedProxy(t, nil, nil)
	c := p.console(t, appUser, appPassword)
	for _, cmd := range []string{"SHOW POOLS", "SHOW HELP", "SHOW VERSION", "RELOAD", "PAUSE", "RESUME", "KILL appdb", "SHOW CONFIG"} {
		if pe := consoleErr(t, c, cmd); pe.Code != "42501" {
			t.Errorf("%s as a non-admin: %s %s, want 42501", cmd, pe.Code, pe.Message)
		}
	}
	// A wrong password is refused as for any database.
	ctx := testCtx(t)
	if _, err := pgconn.Connect(ctx, p.DSN(adminUser, "wrong", proxy.AdminDatabase)); err == nil {
		t.Fatal("console login with a wrong password succeeded")
	} else if pe := (*pgconn.PgError)(nil); !errors.As(err, &pe) || pe.Code != "28P01" {
		t.Fatalf("console login with a wrong password: %v, want 28P01", err)
	}
}

func TestConsoleProtocol(t *testing.T) {
	t.Parallel()
	p := startObservedProxy(t, nil, nil)
	admin := p.console(t, adminUser, adminPassword)
	for _, cmd := range []string{"SELECT 1", "SHOW NOTHING", "PAUSE a b", "SHOW POOLS; SHOW STATS"} {
		if pe := consoleErr(t, admin, cmd); pe.Code != "42601" {
			t.Errorf("%q: %s %s, want 42601", cmd, pe.Code, pe.Message)
		}
	}
	if pe := consoleErr(t, admin, "PAUSE nosuchdb"); pe.Code != "3D000" {
		t.Errorf("PAUSE nosuchdb: %s, want 3D000", pe.Code)
	}
	if pe := consoleErr(t, admin, "KILL"); pe.Code != "42601" {
		t.Errorf("KILL without a database: %s, want 42601", pe.Code)
	}
	res, err := admin.Exec(testCtx(t), " ; ").ReadAll()
	if err != nil || len(res) != 1 || len(res[0].Rows) != 0 {
		t.Errorf("empty query: %v %v", res, err)
	}
	// SHOW HELP answers with a notice.
	var notice string
	ctx := testCtx(t)
	cfg, err := pgconn.ParseConfig(p.DSN(adminUser, adminPassword, proxy.AdminDatabase))
	if err != nil {
		t.Fatal(err)
	}
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { notice = n.Message }
	hc, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Close(ctx)
	if _, err := hc.Exec(ctx, "show help").ReadAll(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(notice, "SHOW HELP|POOLS|CLIENTS|SERVERS|STATS|DATABASES|CONFIG|VERSION|REPLICAS") {
		t.Errorf("SHOW HELP notice %q", notice)
	}

	// The extended protocol is refused with 0A000 and the session goes on.
	xc := connect(t, p.DSN(adminUser, adminPassword, proxy.AdminDatabase))
	rows, err := xc.Query(ctx, "SHOW POOLS") // pgx's default: Parse, Describe, Sync
	if err == nil {
		rows.Close()
		err = rows.Err()
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "0A000" {
		t.Fatalf("extended-protocol SHOW POOLS: %v, want 0A000", err)
	}
	if _, err := xc.Exec(ctx, "SHOW POOLS", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatalf("simple protocol after the refused extended one: %v", err)
	}
}

func TestConsolePauseResumeTransactionMode(t *testing.T) {
	t.Parallel()
	p := startObservedProxy(t, func(c *config.Config) {
		c.Pool.Mode = pool.ModeTransaction
		c.Pool.PoolSize = 1
	}, nil)
	client := connect(t, p.AppDSN())
	if _, err := client.Exec(testCtx(t), "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	admin := p.console(t, adminUser, adminPassword)
	if res, err := admin.Exec(testCtx(t), "PAUSE appdb").ReadAll(); err != nil || res[0].CommandTag.String() != "PAUSE" {
		t.Fatalf("PAUSE: %v %v", res, err)
	}
	if r := show(t, admin, "SHOW DATABASES").row("name", appDB); r["paused"] != "1" {
		t.Errorf("SHOW DATABASES after PAUSE: %v", r)
	}
	got := make(chan error, 1)
	go func() {
		var v int
		err := client.QueryRow(context.Background(), "SELECT 42").Scan(&v)
		if err == nil && v != 42 {
			err = fmt.Errorf("got %d", v)
		}
		got <- err
	}()
	eventually(t, "the query to wait at the pause", func() bool {
		r := show(t, admin, "SHOW POOLS").row("database", appDB, "user", appUser)
		return r["cl_waiting"] == "1"
	})
	if r := show(t, admin, "SHOW CLIENTS").row("database", appDB, "state", "waiting"); r == nil {
		t.Errorf("SHOW CLIENTS shows no waiting client")
	}
	select {
	case err := <-got:
		t.Fatalf("query finished during PAUSE: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	if res, err := admin.Exec(testCtx(t), "RESUME appdb;").ReadAll(); err != nil || res[0].CommandTag.String() != "RESUME" {
		t.Fatalf("RESUME: %v %v", res, err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("query after RESUME: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("query did not finish after RESUME")
	}
	if pe := consoleErr(t, admin, "RESUME"); pe.Code != "55000" {
		t.Errorf("RESUME when nothing is paused: %s", pe.Code)
	}
}

func TestConsolePauseWaitsForSessionClients(t *testing.T) {
	t.Parallel()
	p := startObservedProxy(t, nil, nil)
	client := connect(t, p.AppDSN())
	if _, err := client.Exec(testCtx(t), "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	admin := p.console(t, adminUser, adminPassword)
	paused := make(chan error, 1)
	go func() {
		_, err := admin.Exec(context.Background(), "PAUSE").ReadAll()
		paused <- err
	}()
	select {
	case err := <-paused:
		t.Fatalf("PAUSE returned while a session-mode client held its server: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	client.Close(testCtx(t))
	select {
	case err := <-paused:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("PAUSE did not return after the client left")
	}
	if res, err := admin.Exec(testCtx(t), "RESUME").ReadAll(); err != nil || res[0].CommandTag.String() != "RESUME" {
		t.Fatalf("RESUME: %v %v", res, err)
	}
}

func TestConsoleKill(t *testing.T) {
	t.Parallel()
	for _, mode := range []pool.Mode{pool.ModeSession, pool.ModeTransaction} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			p := startObservedProxy(t, func(c *config.Config) { c.Pool.Mode = mode }, nil)
			clients := []*pgx.Conn{connect(t, p.AppDSN()), connect(t, p.AppDSN())}
			for _, c := range clients {
				if _, err := c.Exec(testCtx(t), "SELECT 1"); err != nil {
					t.Fatal(err)
				}
			}
			admin := p.console(t, adminUser, adminPassword)
			if res, err := admin.Exec(testCtx(t), `KILL "appdb"`).ReadAll(); err != nil || res[0].CommandTag.String() != "KILL" {
				t.Fatalf("KILL: %v %v", res, err)
			}
			for _, c := range clients {
				_, err := c.Exec(testCtx(t), "SELECT 1")
				var pe *pgconn.PgError
				if !errors.As(err, &pe) || pe.Code != "57P01" || pe.Severity != "FATAL" || !strings.Contains(pe.Message, "KILL") {
					t.Errorf("query after KILL: %v, want FATAL 57P01 naming KILL", err)
				}
			}
			eventually(t, "the servers to close", func() bool {
				return show(t, admin, "SHOW SERVERS").count("database", appDB) == 0 &&
					show(t, admin, "SHOW CLIENTS").count("database", appDB) == 0
			})
			// As in PgBouncer, the database stays paused until RESUME.
			if r := show(t, admin, "SHOW DATABASES").row("name", appDB); r["paused"] != "1" {
				t.Errorf("after KILL: %v, want paused", r)
			}
			if _, err := admin.Exec(testCtx(t), "RESUME appdb").ReadAll(); err != nil {
				t.Fatal(err)
			}
			c := connect(t, p.AppDSN())
			if _, err := c.Exec(testCtx(t), "SELECT 1"); err != nil {
				t.Fatalf("new client after RESUME: %v", err)
			}
		})
	}
}

func TestConsoleThroughPsql(t *testing.T) {
	t.Parallel()
	p := startObservedProxy(t, nil, nil)
	client := connect(t, p.AppDSN())
	if _, err := client.Exec(testCtx(t), "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	url := libpqURL(p.Host, p.Port, adminUser, adminPassword, proxy.AdminDatabase)
	res := runPsql(t, url, "", nil, "-c", "SHOW POOLS;")
	if res.code != 0 {
		t.Fatalf("psql SHOW POOLS: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	header := strings.Fields(strings.ReplaceAll(strings.SplitN(res.stdout, "\n", 2)[0], "|", " "))
	requireCols(t, "psql SHOW POOLS", header, poolsCols)
	if !strings.Contains(res.stdout, appDB) || !strings.Contains(res.stdout, "(1 row)") {
		t.Errorf("psql SHOW POOLS output:\n%s", res.stdout)
	}
	// A script of several commands, as typed at the psql prompt.
	res = runPsql(t, url, "show version;\nSHOW HELP;\nSHOW CLIENTS;\n", nil, "-v", "ON_ERROR_STOP=1")
	if res.code != 0 || !strings.Contains(res.stdout, "pgone") || !strings.Contains(res.stderr, "SHOW HELP|POOLS") {
		t.Errorf("psql script: exit %d\nstdout:\n%s\nstderr:\n%s", res.code, res.stdout, res.stderr)
	}
	// A non-admin sees the error, with its code.
	res = runPsql(t, libpqURL(p.Host, p.Port, appUser, appPassword, proxy.AdminDatabase), "", nil,
		"-v", "VERBOSITY=verbose", "-c", "SHOW STATS")
	if res.code == 0 || !strings.Contains(res.stderr, "42501") {
		t.Errorf("psql SHOW STATS as a non-admin: exit %d\n%s", res.code, res.stderr)
	}
}

func TestMetricsAfterTraffic(t *testing.T) {
	t.Parallel()
	p := startObservedProxy(t, func(c *config.Config) {
		c.Pool.Mode = pool.ModeTransaction
	}, nil) // the real router decides the pin and names its cause
	conn := connect(t, p.AppDSN())
	for i := 0; i < 3; i++ {
		if _, err := conn.Exec(testCtx(t), "SELECT 1"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.Exec(testCtx(t), "SELECT 1/0"); err == nil {
		t.Fatal("division by zero succeeded")
	}
	if _, err := conn.Exec(testCtx(t), "LISTEN pgone_metrics_test"); err != nil {
		t.Fatal(err)
	}
	if err := connectErr(t, p.DSN(appUser, "wrong", appDB)); err == nil {
		t.Fatal("login with a wrong password succeeded")
	}

	// The failed login's session may still be ending when connectErr returns.
	var text string
	eventually(t, "the failed login to leave pgone_proxy_clients", func() bool {
		text = p.scrape(t)
		return strings.Contains(text, "\npgone_proxy_clients 1\n")
	})
	lbl := `database="appdb",user="app"`
	// A pool's series name the server too: the primary, here.
	srv := `database="appdb",role="primary",server="` + net.JoinHostPort(cluster.Primary.Host, strconv.Itoa(cluster.Primary.Port)) + `"`
	plbl := srv + `,user="app"`
	for _, want := range []string{
		`pgone_proxy_clients 1`,
		`pgone_pool_clients_active{` + lbl + `} 1`,
		`pgone_pool_clients_waiting{` + plbl + `} 0`,
		`pgone_pool_server_connections 1`,
		`pgone_pool_servers{` + srv + `,state="active",user="app"} 1`, // pinned by LISTEN
		`pgone_pool_wait_longest_seconds{` + plbl + `} 0`,
		`pgone_pool_transactions_total{` + plbl + `} 5`,
		`pgone_pool_queries_total{` + plbl + `} 5`,
		`pgone_pool_received_bytes_total{` + plbl + `}`,
		`pgone_pool_sent_bytes_total{` + plbl + `}`,
		`pgone_pool_query_duration_seconds_count{` + plbl + `} 5`,
		`pgone_pool_transaction_duration_seconds_bucket{` + plbl + `,le="+Inf"} 5`,
		`pgone_pool_wait_duration_seconds_count{` + plbl + `}`,
		`pgone_proxy_errors_total{class="22",database="appdb",source="server",user="app"} 1`,
		`pgone_proxy_errors_total{class="28",database="",source="pgone",user=""} 1`,
		`pgone_proxy_pins_total{cause="listen"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if t.Failed() {
		t.Logf("scrape:\n%s", grepLines(text, "pgone_"))
	}
	if strings.Contains(text, "SELECT") || strings.Contains(text, "wrong") {
		t.Error("metrics carry query text or a password")
	}
}

func grepLines(text, prefix string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
