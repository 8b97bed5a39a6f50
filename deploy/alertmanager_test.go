package deploy

import (
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const installAmtool = "install Debian's prometheus-alertmanager package (apt-get install prometheus-alertmanager; make deps does it)"

// alertmanagerConfig is compose/alertmanager.yml, the file the compose stack
// mounts into its alertmanager service.
var alertmanagerConfig = filepath.Join(composeDir, "alertmanager.yml")

// receiverFor maps each severity pgone's alerts use to the receiver that
// must get them.
var receiverFor = map[string]string{"critical": "pgone-critical", "warning": "pgone-warning"}

// TestAlertmanagerConfigCheck is `amtool check-config`: the file parses and
// every route names a receiver that exists.
func TestAlertmanagerConfigCheck(t *testing.T) {
	amtool := requireTool(t, "amtool", "PGONE_AMTOOL", installAmtool)
	out := run(t, ".", amtool, "check-config", alertmanagerConfig)
	if !strings.Contains(out, "SUCCESS") {
		t.Fatalf("amtool check-config: %s", out)
	}
}

// TestAlertmanagerRoutesEveryAlertBySeverity: `amtool config routes test`
// sends each alert of prometheus/alerts.yml, with its own labels, through
// the routing tree; critical ones must reach the pager receiver and warning
// ones the chat receiver. An alert with another severity (or none) fails.
func TestAlertmanagerRoutesEveryAlertBySeverity(t *testing.T) {
	amtool := requireTool(t, "amtool", "PGONE_AMTOOL", installAmtool)
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert  string            `yaml:"alert"`
				Labels map[string]string `yaml:"labels"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	readYAML(t, "prometheus/alerts.yml", &rules)
	seen := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			sev := r.Labels["severity"]
			want, ok := receiverFor[sev]
			if !ok {
				t.Errorf("alert %s: severity %q is neither critical nor warning, so alertmanager.yml routes it nowhere on purpose", r.Alert, sev)
				continue
			}
			seen[sev] = true
			args := []string{"config", "routes", "test", "--config.file=" + alertmanagerConfig, "alertname=" + r.Alert}
			for k, v := range r.Labels {
				args = append(args, k+"="+v)
			}
			if got := routeTest(t, amtool, args...); got != want {
				t.Errorf("alert %s (severity %s) goes to receiver %q, want %q", r.Alert, sev, got, want)
			}
		}
	}
	// Both receivers are in use, or one of them is dead configuration.
	for sev := range receiverFor {
		if !seen[sev] {
			t.Errorf("no alert in alerts.yml has severity %s", sev)
		}
	}
}

// routeTest runs `amtool config routes test` and returns the receiver it
// printed (amtool's warnings go to stderr).
func routeTest(t *testing.T, amtool string, args ...string) string {
	t.Helper()
	cmd := exec.Command(amtool, args...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("amtool %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestAlertmanagerInhibitsWarningUnderCritical: while a critical alert
// fires, the warning of the same alert name on the same instance is held
// back (the real AlertManager run in cmd/pgone/deploy_test.go shows it
// suppressed).
func TestAlertmanagerInhibitsWarningUnderCritical(t *testing.T) {
	var am struct {
		InhibitRules []struct {
			SourceMatchers []string `yaml:"source_matchers"`
			TargetMatchers []string `yaml:"target_matchers"`
			Equal          []string `yaml:"equal"`
		} `yaml:"inhibit_rules"`
	}
	readYAML(t, alertmanagerConfig, &am)
	for _, r := range am.InhibitRules {
		if slices.Equal(r.SourceMatchers, []string{`severity="critical"`}) &&
			slices.Equal(r.TargetMatchers, []string{`severity="warning"`}) &&
			slices.Contains(r.Equal, "alertname") && slices.Contains(r.Equal, "instance") {
			return
		}
	}
	t.Errorf("no inhibit rule holds back severity=warning under severity=critical with equal [alertname, instance]: %+v", am.InhibitRules)
}

// TestComposeAlertmanager: the alertmanager service reads the mounted
// compose/alertmanager.yml, listens on the port it publishes, and
// Prometheus sends its alerts to that service and port.
func TestComposeAlertmanager(t *testing.T) {
	c := readCompose(t)
	am, ok := c.Services["alertmanager"]
	if !ok {
		t.Fatal("no service alertmanager")
	}
	flags := map[string]string{}
	for _, arg := range am.Command {
		if k, v, ok := strings.Cut(arg, "="); ok {
			flags[k] = v
		}
	}
	cfgPath := flags["--config.file"]
	host, ok := mounts(t, c, "alertmanager")[cfgPath]
	if cfgPath == "" || !ok {
		t.Errorf("alertmanager's --config.file %q is not a mounted file (mounts %v)", cfgPath, am.Volumes)
	} else if filepath.Join(composeDir, host) != alertmanagerConfig {
		t.Errorf("alertmanager reads %s, not compose/alertmanager.yml", host)
	}
	port := "9093" // AlertManager's default
	if l, ok := flags["--web.listen-address"]; ok {
		_, port, _ = strings.Cut(l, ":")
	}
	if !containsPort(am.Ports, port) {
		t.Errorf("alertmanager listens on %s but publishes %v", port, am.Ports)
	}

	var prom struct {
		Alerting struct {
			Alertmanagers []struct {
				StaticConfigs []struct {
					Targets []string `yaml:"targets"`
				} `yaml:"static_configs"`
			} `yaml:"alertmanagers"`
		} `yaml:"alerting"`
	}
	readYAML(t, filepath.Join(composeDir, mounts(t, c, "prometheus")["/etc/prometheus/prometheus.yml"]), &prom)
	var targets []string
	for _, a := range prom.Alerting.Alertmanagers {
		for _, sc := range a.StaticConfigs {
			targets = append(targets, sc.Targets...)
		}
	}
	if !slices.Equal(targets, []string{"alertmanager:" + port}) {
		t.Errorf("prometheus sends alerts to %v, want [alertmanager:%s]", targets, port)
	}
	if _, ok := c.Services["prometheus"].DependsOn["alertmanager"]; !ok {
		t.Error("prometheus does not depend on alertmanager")
	}
}
