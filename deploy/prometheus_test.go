package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const installPromtool = "install Debian's prometheus package (apt-get install prometheus; make deps does it)"

// TestAlertRulesCheck is `promtool check rules`: the file parses and every
// expression is valid PromQL.
func TestAlertRulesCheck(t *testing.T) {
	promtool := requireTool(t, "promtool", "PGONE_PROMTOOL", installPromtool)
	out := run(t, "prometheus", promtool, "check", "rules", "alerts.yml")
	if !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool check rules: %s", out)
	}
}

// TestAlertRulesUnitTests is `promtool test rules`: each alert fires on
// the series it is for and not on a near miss.
func TestAlertRulesUnitTests(t *testing.T) {
	promtool := requireTool(t, "promtool", "PGONE_PROMTOOL", installPromtool)
	run(t, "prometheus", promtool, "test", "rules", "alerts_test.yml")
}

// TestEveryAlertHasARunbookAndAUnitTest: an alert added without a runbook
// or without a promtool test case is caught here.
func TestEveryAlertHasARunbookAndAUnitTest(t *testing.T) {
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	readYAML(t, "prometheus/alerts.yml", &rules)
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	readYAML(t, "prometheus/alerts_test.yml", &tests)
	fires := map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			}
		}
	}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			n++
			if len(strings.TrimSpace(r.Annotations["runbook"])) < 80 {
				t.Errorf("alert %s: the runbook annotation is missing or too short to help", r.Alert)
			}
			if r.Annotations["summary"] == "" {
				t.Errorf("alert %s: no summary annotation", r.Alert)
			}
			if !fires[r.Alert] {
				t.Errorf("alert %s: no case in alerts_test.yml where it fires", r.Alert)
			}
		}
	}
	if n < 7 {
		t.Errorf("%d alerts, want at least 7", n)
	}
}

// TestAlertMetricsArePgones: every pgone_* name an alert uses is defined
// in pgone's source (a quick check; the real-Prometheus test is the proof).
func TestAlertMetricsArePgones(t *testing.T) {
	defined := definedMetricNames(t)
	body, err := os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range regexp.MustCompile(`\bpgone_[a-z0-9_]+`).FindAllString(string(body), -1) {
		if !defined[name] {
			t.Errorf("alerts.yml uses %s, which no package of pgone defines", name)
		}
	}
}

// definedMetricNames are the metric names quoted in pgone's non-test Go
// source under proxy/, pool/, cache/ and tuner/.
func definedMetricNames(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	re := regexp.MustCompile(`"(pgone_[a-z0-9_]+)"`)
	for _, dir := range []string{"../proxy", "../pool", "../cache", "../tuner"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range re.FindAllStringSubmatch(string(b), -1) {
				names[m[1]] = true
			}
		}
	}
	if len(names) < 20 {
		t.Fatalf("found only %d metric names in pgone's source: did the metrics move?", len(names))
	}
	return names
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
