package main

// The dashboard (deploy/grafana/pgone.json) and the alert rules
// (deploy/prometheus/alerts.yml) checked against what pgone really exports:
// a real Prometheus scrapes a real pgone in front of a real primary and
// replica, and every panel query and alert expression is evaluated through
// Prometheus's HTTP API. A renamed metric fails here, not in a dashboard.
// Prometheus sends its alerts to a real AlertManager running
// deploy/compose/alertmanager.yml (deploy_alertmanager_test.go).

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.yaml.in/yaml/v3"

	"github.com/pgone/pgone/internal/pgtest"
)

const deployDir = "../../deploy"

// deployServeConfig is a split database in transaction mode and the same
// two servers as a role auto database (failover metrics); the cache's
// logical invalidation stream is on, and the tuner's settings loop in
// dry-run: pgone's cap above the servers' max_connections (400) is advice
// it gives at its first reading, so pgone_tuner_decisions_total has a
// series; the cache shares entries through a real redis-server (L2). The
// %d are the primary's and the replica's ports, twice; the %s Redis's
// address.
const deployServeConfig = `listen: "127.0.0.1:0"
databases:
  app:
    host: 127.0.0.1
    port: %d
    dbname: postgres
    user: postgres
    password: postgres
    pool_mode: transaction
    pool_size: 4
    consistency: eventual
    replicas:
      - host: 127.0.0.1
        port: %d
  app_auto:
    dbname: postgres
    user: postgres
    password: postgres
    pool_mode: transaction
    pool_size: 2
    servers:
      - {host: 127.0.0.1, port: %d, role: auto}
      - {host: 127.0.0.1, port: %d, role: auto}
users:
  alice:
    password: alice-secret
pool:
  replica_check_interval: 200ms
  max_server_connections: 1000
cache:
  mode: rules
  invalidation: logical
  redis:
    address: %s
  rules:
    - table: deploy_t
tuner:
  interval: 100ms
  pg_settings: dry-run
http:
  listen: "127.0.0.1:0"
`

func TestDashboardAndAlertsAgainstRealPrometheus(t *testing.T) {
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("prometheus not found on PATH: install Debian's prometheus package (apt-get install prometheus; make deps does it)")
	}
	amBin := alertmanagerBinary(t)
	// wal_level=logical: the cache's invalidation stream needs it.
	c := pgtest.New(t, pgtest.Options{Replica: true, Settings: map[string]string{"wal_level": "logical"}})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := c.Exec(ctx, "CREATE TABLE deploy_t (id int PRIMARY KEY, v text)"); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReplicaCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	redis, err := pgtest.StartRedis(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = redis.Stop() })
	rs, err := startServeConfig(t, fmt.Sprintf(deployServeConfig, c.Primary.Port, c.Replica.Port, c.Primary.Port, c.Replica.Port, redis.Addr), serveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	am := startAlertmanager(t, amBin)
	prom := startPrometheus(t, promBin, rs.httpAddr, am.addr, deployTestRules)

	runDeployTraffic(ctx, t, rs.proxyAddr)
	runCacheTraffic(ctx, t, c, rs)

	panels := dashboardQueries(t)
	alerts := alertExpressions(t)

	// Wait until every panel query returns series (counters need two
	// scrapes after the traffic for rate()), then report the ones that do not.
	deadline := time.Now().Add(30 * time.Second)
	var empty []string
	for {
		empty = empty[:0]
		for _, q := range panels {
			if n, err := prom.series(q.expr); err != nil || n == 0 {
				empty = append(empty, q.name)
			}
		}
		if len(empty) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	for _, q := range panels {
		n, err := prom.series(q.expr)
		switch {
		case err != nil:
			t.Errorf("panel %s: %v\n  %s", q.name, err, q.expr)
		case n > 0:
		default:
			t.Errorf("panel %s returns no series (a renamed metric or label?)\n  %s", q.name, q.expr)
		}
	}

	// Every alert expression is valid; every metric an alert reads exists.
	for _, a := range alerts {
		if _, err := prom.series(a.expr); err != nil {
			t.Errorf("alert %s: %v\n  %s", a.name, err, a.expr)
		}
		for _, m := range metricNames(a.expr) {
			if n, err := prom.series(fmt.Sprintf(`{__name__=%q, job="pgone"}`, m)); err != nil || n == 0 {
				t.Errorf("alert %s reads %s, which Prometheus does not have from pgone (%v)", a.name, m, err)
			}
		}
	}
	// The traffic made the cache do each thing its panels show, so they
	// show more than zeros.
	for _, q := range []string{
		`pgone_cache_hits_total{job="pgone"} > 0`,
		`pgone_cache_misses_total{job="pgone"} > 0`,
		`pgone_cache_fills_total{job="pgone"} > 0`,
		`pgone_cache_invalidations_total{job="pgone", cause="write"} > 0`,
		`pgone_cache_entries{job="pgone"} > 0`,
		// The failover, tuner and cache stream series the new panels and
		// alerts read, with the values this setup must give.
		`pgone_failover_primary_state{job="pgone", database="app_auto", state="ok"} == 1`,
		`pgone_failover_promotions_total{job="pgone", database="app_auto"} == 0`,
		`pgone_tuner_decisions_total{job="pgone", loop="settings", action="advise"} > 0`,
		`pgone_cache_replication_connected{job="pgone"} == 1`,
		`pgone_pool_size{job="pgone", database="app"} == 4`,
		`pgone_cache_l2_up{job="pgone"} == 1`,
		`pgone_cache_l2_fills_total{job="pgone"} > 0`,
	} {
		if n, err := prom.series(q); err != nil || n == 0 {
			t.Errorf("Prometheus has no %s (%v)", q, err)
		}
	}
	// Prometheus loaded the rule files and evaluated each rule without error.
	prom.checkRules(t, len(alerts)+deployTestRuleCount)
	// It sent the firing test alerts to AlertManager, which routed them by severity.
	am.checkRouting(t)
}

// runCacheTraffic makes the cache (a rule on deploy_t) miss, fill, hit and
// invalidate: the same read is repeated until it is answered from the cache
// (a fill from the replica is stored only once the replica, as pgone last
// saw it, has replayed the writes before it), then a write invalidates it.
func runCacheTraffic(ctx context.Context, t *testing.T, c *pgtest.Cluster, rs *runningServe) {
	t.Helper()
	if err := c.WaitReplicaCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(rs.proxyAddr, ":")
	conn, err := pgx.Connect(ctx, fmt.Sprintf("host=%s port=%s user=alice password=alice-secret dbname=app sslmode=disable", host, port))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	deadline := time.Now().Add(15 * time.Second)
	for scrapeCounter(t, rs, "pgone_cache_hits_total") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no cache hit after 15s of repeating a cacheable read")
		}
		var v string
		if err := conn.QueryRow(ctx, "SELECT v FROM deploy_t WHERE id = 1").Scan(&v); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := conn.Exec(ctx, "UPDATE deploy_t SET v = 'w' WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
}

// scrapeCounter reads one unlabelled sample from pgone's /metrics.
func scrapeCounter(t *testing.T, rs *runningServe, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + rs.httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("pgone's /metrics has no %s", name)
	return 0
}

// runDeployTraffic sends writes, reads (routed to the replica), a
// transaction and two errors through pgone.
func runDeployTraffic(ctx context.Context, t *testing.T, proxyAddr string) {
	t.Helper()
	host, port, _ := strings.Cut(proxyAddr, ":")
	dsn := fmt.Sprintf("host=%s port=%s user=alice password=alice-secret dbname=app sslmode=disable", host, port)
	writer, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close(context.Background())
	reader, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close(context.Background())
	for i := 0; i < 20; i++ {
		if _, err := writer.Exec(ctx, "INSERT INTO deploy_t VALUES ($1, 'x') ON CONFLICT (id) DO UPDATE SET v = 'y'", i); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := reader.QueryRow(ctx, "SELECT count(*) FROM deploy_t").Scan(&n); err != nil {
			t.Fatal(err)
		}
	}
	tx, err := writer.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "UPDATE deploy_t SET v = 'z' WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := reader.Exec(ctx, "SELECT 1/0"); err == nil {
		t.Fatal("SELECT 1/0 succeeded")
	}
	if _, err := writer.Exec(ctx, "SELEC 1"); err == nil {
		t.Fatal("a syntax error succeeded")
	}
}

// namedQuery is one panel target or alert expression.
type namedQuery struct{ name, expr string }

// dashboardQueries are every panel target of the dashboard, with Grafana's
// variables replaced as a user who picked "All" would have them.
func dashboardQueries(t *testing.T) []namedQuery {
	t.Helper()
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				RefID string `json:"refId"`
				Expr  string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	b, err := os.ReadFile(filepath.Join(deployDir, "grafana", "pgone.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("pgone.json: %v", err)
	}
	vars := strings.NewReplacer("$__rate_interval", "30s", "$instance", ".*", "$database", ".*")
	var qs []namedQuery
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			qs = append(qs, namedQuery{p.Title + " " + tg.RefID, vars.Replace(tg.Expr)})
		}
	}
	// A variable's label_values(metric, label) must find the metric with the label.
	lv := regexp.MustCompile(`^label_values\((\w+),\s*(\w+)\)$`)
	for _, v := range d.Templating.List {
		if m := lv.FindStringSubmatch(v.Definition); m != nil {
			qs = append(qs, namedQuery{"variable $" + v.Name, fmt.Sprintf(`%s{%s!=""}`, m[1], m[2])})
		}
	}
	if len(qs) < 25 {
		t.Fatalf("only %d panel queries in the dashboard", len(qs))
	}
	return qs
}

func alertExpressions(t *testing.T) []namedQuery {
	t.Helper()
	var f struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	b, err := os.ReadFile(filepath.Join(deployDir, "prometheus", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	var qs []namedQuery
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			qs = append(qs, namedQuery{r.Alert, r.Expr})
		}
	}
	return qs
}

// metricNames are the metric names an expression selects (pgone_*, process_*, go_*, up).
func metricNames(expr string) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range regexp.MustCompile(`\b(pgone_[a-z0-9_]+|process_[a-z_]+|go_[a-z_]+|up\b)`).FindAllStringSubmatch(expr, -1) {
		if !seen[m[1]] {
			seen[m[1]] = true
			out = append(out, m[1])
		}
	}
	return out
}

// promServer is a Prometheus server started for one test.
type promServer struct{ base string }

// startPrometheus runs the prometheus binary in a temp dir, scraping pgone's
// HTTP endpoint every second as job "pgone", loading the alert rules and
// extraRules (a rule file's text), and sending alerts to alertmanager.
func startPrometheus(t *testing.T, bin, target, alertmanager, extraRules string) *promServer {
	t.Helper()
	dir := t.TempDir()
	rules, err := filepath.Abs(filepath.Join(deployDir, "prometheus", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	extra := filepath.Join(dir, "test-rules.yml")
	if err := os.WriteFile(extra, []byte(extraRules), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
alerting:
  alertmanagers:
    - static_configs:
        - targets: [%q]
rule_files: [%q, %q]
scrape_configs:
  - job_name: pgone
    static_configs:
      - targets: [%q]
`, alertmanager, rules, extra, target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := startDaemon(t, "prometheus", bin, dir, func(addr string) []string {
		return []string{"--config.file=" + filepath.Join(dir, "prometheus.yml"),
			"--storage.tsdb.path=" + filepath.Join(dir, "data"),
			"--web.listen-address=" + addr, "--log.level=warn"}
	})
	return &promServer{base: "http://" + addr}
}

// startDaemon runs bin (Prometheus, AlertManager) in dir on a free port,
// with the arguments args gives for its address, logging to dir/name.log;
// it returns the address once the daemon answers and stops it at the
// test's end.
func startDaemon(t *testing.T, name, bin, dir string, args func(addr string) []string) string {
	t.Helper()
	port, err := pgtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	logFile, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(bin, args(addr)...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	proc, err := pgtest.StartProcess(cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proc.Stop(syscall.SIGTERM, 10*time.Second) })
	waitReady(t, name, "http://"+addr, proc, logFile.Name())
	return addr
}

// series evaluates expr now and returns how many series (or 1 for a
// scalar) it gave; an error is a query Prometheus refused.
func (p *promServer) series(expr string) (int, error) {
	var r struct {
		Status    string `json:"status"`
		Error     string `json:"error"`
		ErrorType string `json:"errorType"`
		Data      struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := p.get("/api/v1/query?query="+url.QueryEscape(expr), &r); err != nil {
		return 0, err
	}
	if r.Status != "success" {
		return 0, fmt.Errorf("%s: %s", r.ErrorType, r.Error)
	}
	switch r.Data.ResultType {
	case "vector", "matrix":
		var rows []json.RawMessage
		if err := json.Unmarshal(r.Data.Result, &rows); err != nil {
			return 0, err
		}
		return len(rows), nil
	}
	return 1, nil
}

// checkRules waits until Prometheus has evaluated every loaded rule once and
// fails on a rule count other than want or a rule whose health is not ok.
func (p *promServer) checkRules(t *testing.T, want int) {
	t.Helper()
	type rule struct {
		Name           string    `json:"name"`
		Health         string    `json:"health"`
		LastError      string    `json:"lastError"`
		LastEvaluation time.Time `json:"lastEvaluation"`
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var r struct {
			Data struct {
				Groups []struct {
					Rules []rule `json:"rules"`
				} `json:"groups"`
			} `json:"data"`
		}
		if err := p.get("/api/v1/rules", &r); err != nil {
			t.Fatal(err)
		}
		var rules []rule
		for _, g := range r.Data.Groups {
			rules = append(rules, g.Rules...)
		}
		evaluated := len(rules) == want
		for _, ru := range rules {
			if ru.LastEvaluation.IsZero() || ru.LastEvaluation.Year() < 2000 {
				evaluated = false
			}
		}
		if evaluated || time.Now().After(deadline) {
			if len(rules) != want {
				t.Fatalf("Prometheus loaded %d rules, want %d", len(rules), want)
			}
			for _, ru := range rules {
				if ru.Health != "ok" {
					t.Errorf("rule %s: health %q %s", ru.Name, ru.Health, ru.LastError)
				}
			}
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (p *promServer) get(path string, v any) error {
	resp, err := http.Get(p.base + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	return nil
}
