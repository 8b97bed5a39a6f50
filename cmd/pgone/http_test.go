package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgone/pgone/config"
)

// serveConfig is a config whose database needs no server (the console and
// the HTTP endpoint work without one), with secrets to look for.
const serveConfig = `listen: "127.0.0.1:0"
limits:
  shutdown_timeout: %s
databases:
  app:
    host: 127.0.0.1
    port: 1
    user: owner
    password: db-owner-secret
users:
  admin:
    password: admin-secret
  alice:
    password: alice-secret
admin_users: [admin]
pool:
  pool_size: %d
http:
  listen: "%s"
`

var serveSecrets = []string{"db-owner-secret", "admin-secret", "alice-secret"}

// runningServe is serve running in the test, stopped with its signals.
type runningServe struct {
	path      string
	proxyAddr string
	httpAddr  string
	sigs      chan os.Signal
	done      chan error
}

func startServe(t *testing.T, httpListen string, opts serveOptions) (*runningServe, error) {
	t.Helper()
	return startServeConfig(t, fmt.Sprintf(serveConfig, "3s", 5, httpListen), opts)
}

// startServeConfig runs serve in the test on a config file with content.
func startServeConfig(t *testing.T, content string, opts serveOptions) (*runningServe, error) {
	t.Helper()
	rs := &runningServe{
		path: writeFile(t, "pgone.yaml", content),
		sigs: make(chan os.Signal, 4),
		done: make(chan error, 1),
	}
	cfg, err := config.Load(rs.path)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	ready := make(chan string, 1)
	opts.signals = rs.sigs
	httpReady := make(chan string, 1)
	opts.httpReady = func(addr string) { httpReady <- addr }
	go func() {
		rs.done <- serve(cfg, func() (*config.Config, error) { return config.Load(rs.path) }, log,
			func(addr string) { ready <- addr }, opts)
	}()
	select {
	case rs.proxyAddr = <-ready:
	case err := <-rs.done:
		return nil, err
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not start")
	}
	select {
	case rs.httpAddr = <-httpReady:
	default: // not serving HTTP
	}
	t.Cleanup(func() {
		select {
		case rs.sigs <- syscall.SIGTERM:
		default:
		}
		select {
		case <-rs.done:
		case <-time.After(10 * time.Second):
			t.Error("serve did not stop")
		}
	})
	return rs, nil
}

func (rs *runningServe) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + rs.httpAddr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func (rs *runningServe) console(t *testing.T) *pgconn.PgConn {
	t.Helper()
	host, port, _ := net.SplitHostPort(rs.proxyAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgconn.Connect(ctx, fmt.Sprintf("host=%s port=%s user=admin password=admin-secret dbname=pgone sslmode=disable", host, port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// configValue runs SHOW CONFIG and returns the rows by key, failing on any
// password in sight.
func configValues(t *testing.T, c *pgconn.PgConn) map[string]string {
	t.Helper()
	res, err := c.Exec(context.Background(), "SHOW CONFIG").ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, r := range res[0].Rows {
		for _, v := range r {
			for _, s := range serveSecrets {
				if strings.Contains(string(v), s) {
					t.Errorf("SHOW CONFIG row %q shows a password", r)
				}
			}
		}
		out[string(r[0])] = string(r[1])
	}
	return out
}

func TestServeConsoleAndHTTP(t *testing.T) {
	rs, err := startServe(t, "127.0.0.1:0", serveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if code, body := rs.get(t, "/healthz"); code != 200 {
		t.Errorf("/healthz: %d %s", code, body)
	}
	if code, body := rs.get(t, "/readyz"); code != 200 {
		t.Errorf("/readyz: %d %s", code, body)
	}
	admin := rs.console(t)
	code, metrics := rs.get(t, "/metrics")
	for _, want := range []string{"pgone_proxy_clients 1", "pgone_pool_server_connections 0", "go_goroutines", "process_start_time_seconds"} {
		if code != 200 || !strings.Contains(metrics, want) {
			t.Errorf("/metrics (%d) lacks %q", code, want)
		}
	}

	res, err := admin.Exec(context.Background(), "SHOW VERSION").ReadAll()
	if err != nil || string(res[0].Rows[0][0]) != "pgone "+versionString() {
		t.Fatalf("SHOW VERSION: %v %v", res, err)
	}
	cfg := configValues(t, admin)
	for key, want := range map[string]string{
		"users.alice.password":    "***",
		"databases.app.password":  "***",
		"databases.app.user":      "owner",
		"pool.pool_size":          "5",
		"http.listen":             "127.0.0.1:0",
		"limits.shutdown_timeout": "3s",
		"admin_users":             "admin",
	} {
		if cfg[key] != want {
			t.Errorf("SHOW CONFIG %s = %q, want %q", key, cfg[key], want)
		}
	}

	// RELOAD rereads the file; a bad file is refused and the old config stays.
	if err := os.WriteFile(rs.path, []byte(fmt.Sprintf(serveConfig, "3s", 7, "127.0.0.1:0")), 0o600); err != nil {
		t.Fatal(err)
	}
	if res, err := admin.Exec(context.Background(), "RELOAD").ReadAll(); err != nil || res[0].CommandTag.String() != "RELOAD" {
		t.Fatalf("RELOAD: %v %v", res, err)
	}
	if v := configValues(t, admin)["pool.pool_size"]; v != "7" {
		t.Errorf("pool.pool_size after RELOAD = %q, want 7", v)
	}
	if err := os.WriteFile(rs.path, []byte(fmt.Sprintf(serveConfig, "3s", -1, "127.0.0.1:0")), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = admin.Exec(context.Background(), "RELOAD").ReadAll()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "F0000" || !strings.Contains(pe.Message, "pool.pool_size") {
		t.Fatalf("RELOAD of a bad file: %v, want F0000 naming pool.pool_size", err)
	}
	if v := configValues(t, admin)["pool.pool_size"]; v != "7" {
		t.Errorf("pool.pool_size after a refused RELOAD = %q, want 7", v)
	}
	// SIGHUP takes the same path.
	if err := os.WriteFile(rs.path, []byte(fmt.Sprintf(serveConfig, "3s", 9, "127.0.0.1:0")), 0o600); err != nil {
		t.Fatal(err)
	}
	rs.sigs <- syscall.SIGHUP
	deadline := time.Now().Add(10 * time.Second)
	for configValues(t, admin)["pool.pool_size"] != "9" {
		if time.Now().After(deadline) {
			t.Fatal("SIGHUP did not reload")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestServeReadyzFlipsDuringShutdown(t *testing.T) {
	rs, err := startServe(t, "127.0.0.1:0", serveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// A client that never finishes its startup keeps shutdown waiting for
	// its grace period (3s).
	nc, err := net.Dial("tcp", rs.proxyAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, m := rs.get(t, "/metrics"); strings.Contains(m, "pgone_proxy_clients 1") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the client never showed in pgone_proxy_clients")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code, _ := rs.get(t, "/readyz"); code != 200 {
		t.Fatalf("/readyz before shutdown: %d", code)
	}
	rs.sigs <- syscall.SIGTERM
	for {
		code, _ := rs.get(t, "/readyz")
		if code == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz stayed %d during shutdown", code)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if code, _ := rs.get(t, "/healthz"); code != 200 {
		t.Errorf("/healthz during shutdown: %d, want 200", code)
	}
	select {
	case err := <-rs.done:
		t.Fatalf("serve returned before the grace period: %v", err)
	default:
	}
	nc.Close()
	select {
	case err := <-rs.done:
		if err != nil {
			t.Fatal(err)
		}
		rs.done <- nil // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
	if _, err := http.Get("http://" + rs.httpAddr + "/healthz"); err == nil {
		t.Error("the HTTP endpoint still answers after serve returned")
	}
}

func TestServeHTTPAddressBusy(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	if _, err := startServe(t, busy.Addr().String(), serveOptions{}); err == nil || !strings.Contains(err.Error(), "http.listen") {
		t.Fatalf("serve with a busy http.listen: %v, want an http.listen error", err)
	}
	// The demo logs and goes on.
	rs, err := startServe(t, busy.Addr().String(), serveOptions{optionalHTTP: true})
	if err != nil {
		t.Fatalf("with optionalHTTP: %v", err)
	}
	if rs.httpAddr != "" {
		t.Errorf("HTTP reported ready on %s", rs.httpAddr)
	}
	rs.console(t) // the proxy serves
}
