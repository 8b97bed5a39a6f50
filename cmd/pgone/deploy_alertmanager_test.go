package main

// A real AlertManager with deploy/compose/alertmanager.yml behind the
// real-Prometheus test: Prometheus sends it alerts fired from pgone's own
// metrics, and its API must show each routed to the receiver of its
// severity, and a warning held back under the critical of the same alert.

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/pgone/pgone/internal/pgtest"
)

// deployTestRules fire as soon as Prometheus has scraped pgone after the
// test's traffic (no `for`). PgoneDeployTestErrors exists at both
// severities on the same instance, so the inhibit rule must hold the
// warning back; PgoneDeployTestCacheHit is a warning alone.
const deployTestRules = `groups:
  - name: pgone-deploy-test
    rules:
      - alert: PgoneDeployTestErrors
        expr: sum by (instance) (pgone_proxy_errors_total{job="pgone"}) > 0
        labels:
          severity: critical
      - alert: PgoneDeployTestErrors
        expr: sum by (instance) (pgone_proxy_errors_total{job="pgone"}) > 0
        labels:
          severity: warning
      - alert: PgoneDeployTestCacheHit
        expr: sum by (instance) (pgone_cache_hits_total{job="pgone"}) > 0
        labels:
          severity: warning
`

// deployTestRuleCount is the number of rules in deployTestRules.
const deployTestRuleCount = 3

// wantRouting is where each test alert must end up: receiver and state.
var wantRouting = []struct{ alertname, severity, receiver, state string }{
	{"PgoneDeployTestErrors", "critical", "pgone-critical", "active"},
	{"PgoneDeployTestErrors", "warning", "pgone-warning", "suppressed"},
	{"PgoneDeployTestCacheHit", "warning", "pgone-warning", "active"},
}

// alertmanagerBinary finds AlertManager: Debian's package names it
// prometheus-alertmanager, upstream's tarball alertmanager.
func alertmanagerBinary(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"prometheus-alertmanager", "alertmanager"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("alertmanager not found on PATH (as prometheus-alertmanager or alertmanager): install Debian's prometheus-alertmanager package (apt-get install prometheus-alertmanager; make deps does it)")
	return ""
}

// amServer is an AlertManager started for one test.
type amServer struct {
	addr string // host:port, what Prometheus's alerting config targets
	promServer
}

// startAlertmanager runs AlertManager on a free port with
// deploy/compose/alertmanager.yml, its webhook URLs pointed at a local
// server so no notification leaves the test, and clustering off.
func startAlertmanager(t *testing.T, bin string) *amServer {
	t.Helper()
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(sink.Close)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfgPath, localWebhooks(t, sink.URL), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := startDaemon(t, "alertmanager", bin, dir, func(addr string) []string {
		return []string{"--config.file=" + cfgPath, "--storage.path=" + filepath.Join(dir, "data"),
			"--web.listen-address=" + addr, "--cluster.listen-address=", "--log.level=warn"}
	})
	return &amServer{addr: addr, promServer: promServer{base: "http://" + addr}}
}

// localWebhooks returns the deployed AlertManager config with every
// webhook URL replaced by base/<receiver name>.
func localWebhooks(t *testing.T, base string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(deployDir, "compose", "alertmanager.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("alertmanager.yml: %v", err)
	}
	receivers, _ := cfg["receivers"].([]any)
	hooks := 0
	for _, r := range receivers {
		rm := r.(map[string]any)
		wcs, _ := rm["webhook_configs"].([]any)
		for _, wc := range wcs {
			wc.(map[string]any)["url"] = base + "/" + rm["name"].(string)
			hooks++
		}
		for key := range rm {
			if key != "name" && key != "webhook_configs" {
				// A real pager or chat receiver would notify someone from a test.
				delete(rm, key)
			}
		}
	}
	if hooks == 0 {
		t.Fatal("alertmanager.yml has no webhook receivers to point at the test")
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// waitReady polls base/-/ready until it answers 200, failing with the log if
// the process exits or 30 s pass.
func waitReady(t *testing.T, name, base string, proc *pgtest.Process, logPath string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-proc.Done():
			log, _ := os.ReadFile(logPath)
			t.Fatalf("%s exited: %v\n%s", name, proc.Err(), log)
		default:
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logPath)
			t.Fatalf("%s not ready on %s after 30s\n%s", name, base, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// amAlert is the part of AlertManager's /api/v2/alerts the test reads.
type amAlert struct {
	Labels    map[string]string `json:"labels"`
	Receivers []struct {
		Name string `json:"name"`
	} `json:"receivers"`
	Status struct {
		State       string   `json:"state"`
		InhibitedBy []string `json:"inhibitedBy"`
	} `json:"status"`
}

func (a amAlert) receiverNames() []string {
	var out []string
	for _, r := range a.Receivers {
		out = append(out, r.Name)
	}
	return out
}

// checkRouting waits until AlertManager has every test alert as wantRouting
// says (Prometheus sends them after its next rule evaluation), then reports
// each that differs.
func (am *amServer) checkRouting(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var alerts []amAlert
		if err := am.get("/api/v2/alerts", &alerts); err != nil {
			t.Fatal(err)
		}
		problems := routingProblems(alerts)
		if len(problems) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, p := range problems {
				t.Error(p)
			}
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// routingProblems lists how alerts differ from wantRouting.
func routingProblems(alerts []amAlert) []string {
	var problems []string
	for _, w := range wantRouting {
		var found *amAlert
		for i, a := range alerts {
			if a.Labels["alertname"] == w.alertname && a.Labels["severity"] == w.severity {
				found = &alerts[i]
			}
		}
		switch {
		case found == nil:
			problems = append(problems, fmt.Sprintf("AlertManager does not have %s (severity %s) from Prometheus", w.alertname, w.severity))
		case !slices.Equal(found.receiverNames(), []string{w.receiver}):
			problems = append(problems, fmt.Sprintf("%s (severity %s) routed to %v, want [%s]", w.alertname, w.severity, found.receiverNames(), w.receiver))
		case found.Status.State != w.state:
			problems = append(problems, fmt.Sprintf("%s (severity %s) is %s (inhibited by %v), want %s", w.alertname, w.severity, found.Status.State, found.Status.InhibitedBy, w.state))
		}
	}
	return problems
}
