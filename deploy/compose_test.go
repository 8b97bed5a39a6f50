package deploy

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/pgone/pgone/config"
)

const composeDir = "compose"

type composeFile struct {
	Services map[string]struct {
		Image string `yaml:"image"`
		Build *struct {
			Context    string `yaml:"context"`
			Dockerfile string `yaml:"dockerfile"`
		} `yaml:"build"`
		Volumes   []string       `yaml:"volumes"`
		Ports     []string       `yaml:"ports"`
		DependsOn map[string]any `yaml:"depends_on"`
		Command   []string       `yaml:"command"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
}

// readCompose decodes compose.yaml; depends_on may be a list or a map.
func readCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(composeDir, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := yaml.Unmarshal(b, &raw); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	// depends_on may be a list; normalise it to a map before decoding.
	for _, s := range raw["services"].(map[string]any) {
		svc := s.(map[string]any)
		if list, ok := svc["depends_on"].([]any); ok {
			m := map[string]any{}
			for _, name := range list {
				m[name.(string)] = nil
			}
			svc["depends_on"] = m
		}
	}
	norm, err := yaml.Marshal(raw)
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	dec := yaml.NewDecoder(strings.NewReader(string(norm)))
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return c
}

// mounts maps each bind-mounted container path of a service to its host
// path (relative to the compose directory).
func mounts(t *testing.T, c composeFile, service string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, v := range c.Services[service].Volumes {
		parts := strings.Split(v, ":")
		if len(parts) < 2 {
			t.Errorf("service %s: volume %q has no container path", service, v)
			continue
		}
		out[parts[1]] = parts[0]
	}
	return out
}

// TestComposeReferences: every bind mount and build context exists, named
// volumes are declared, depends_on names services, and every service has an
// image or a build.
func TestComposeReferences(t *testing.T) {
	c := readCompose(t)
	for _, want := range []string{"postgres-primary", "postgres-replica", "redis", "pgone", "prometheus", "grafana"} {
		if _, ok := c.Services[want]; !ok {
			t.Errorf("no service %s", want)
		}
	}
	for name, s := range c.Services {
		if s.Image == "" && s.Build == nil {
			t.Errorf("service %s: neither image nor build", name)
		}
		if s.Build != nil {
			df := filepath.Join(composeDir, s.Build.Context, s.Build.Dockerfile)
			if _, err := os.Stat(df); err != nil {
				t.Errorf("service %s: build: %v", name, err)
			}
		}
		for container, host := range mounts(t, c, name) {
			if strings.HasPrefix(host, ".") || strings.HasPrefix(host, "/") {
				if _, err := os.Stat(filepath.Join(composeDir, host)); err != nil {
					t.Errorf("service %s mounts %s at %s: %v", name, host, container, err)
				}
			} else if _, ok := c.Volumes[host]; !ok {
				t.Errorf("service %s: named volume %s is not declared", name, host)
			}
		}
		for dep := range s.DependsOn {
			if _, ok := c.Services[dep]; !ok {
				t.Errorf("service %s depends on %s, which is not a service", name, dep)
			}
		}
	}
}

// TestComposePgoneConfig: pgone's mounted config is valid, is where the
// image looks for it, listens on the ports the compose file publishes, and
// names the compose services as its servers and Redis.
func TestComposePgoneConfig(t *testing.T) {
	c := readCompose(t)
	host, ok := mounts(t, c, "pgone")["/etc/pgone/pgone.yaml"]
	if !ok {
		t.Fatal("pgone's config is not mounted at /etc/pgone/pgone.yaml, where the image's CMD reads it")
	}
	dockerfile, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(dockerfile), `"--config", "/etc/pgone/pgone.yaml"`) {
		t.Error("the Dockerfile's CMD does not read /etc/pgone/pgone.yaml")
	}
	cfg, err := config.Load(filepath.Join(composeDir, host))
	if err != nil {
		t.Fatalf("pgone.yaml: %v", err)
	}
	published := map[string]bool{}
	for _, p := range c.Services["pgone"].Ports {
		parts := strings.Split(p, ":")
		published[parts[len(parts)-1]] = true
	}
	for key, addr := range map[string]string{"listen": cfg.Proxy.Listen, "http.listen": cfg.HTTP.Listen} {
		h, port, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if h != "0.0.0.0" && h != "" {
			t.Errorf("%s = %s: inside a container pgone must listen beyond loopback", key, addr)
		}
		if !published[port] {
			t.Errorf("%s port %s is not published by the pgone service (%v)", key, port, c.Services["pgone"].Ports)
		}
		if !strings.Contains(string(dockerfile), "EXPOSE 6432 9930") || (port != "6432" && port != "9930") {
			t.Errorf("%s port %s differs from the Dockerfile's EXPOSE 6432 9930", key, port)
		}
	}
	for name, db := range cfg.Proxy.Databases {
		if _, ok := c.Services[db.Host]; !ok {
			t.Errorf("databases.%s.host %s is not a compose service", name, db.Host)
		}
		if len(db.Replicas) == 0 {
			t.Errorf("databases.%s has no replica: the stack is meant to show the split", name)
		}
		for _, r := range db.Replicas {
			if _, ok := c.Services[r.Host]; !ok {
				t.Errorf("databases.%s replica %s is not a compose service", name, r.Host)
			}
		}
	}
	rh, _, err := net.SplitHostPort(cfg.Cache.Redis.Address)
	if err != nil || c.Services[rh].Image == "" {
		t.Errorf("cache.redis.address %q does not name the redis service", cfg.Cache.Redis.Address)
	}
}

// TestComposePrometheusAndGrafana: Prometheus's config is valid (promtool),
// scrapes pgone's service on its HTTP port as job "pgone" (what the alert
// rules select) and loads the mounted rule file; Grafana's provisioning
// points at the Prometheus service and the mounted dashboard.
func TestComposePrometheusAndGrafana(t *testing.T) {
	c := readCompose(t)
	promMounts := mounts(t, c, "prometheus")
	var prom struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, filepath.Join(composeDir, promMounts["/etc/prometheus/prometheus.yml"]), &prom)
	promtool := requireTool(t, "promtool", "PGONE_PROMTOOL", installPromtool)
	run(t, composeDir, promtool, "check", "config", "--syntax-only", promMounts["/etc/prometheus/prometheus.yml"])
	for _, rf := range prom.RuleFiles {
		host, ok := promMounts[rf]
		if !ok {
			t.Errorf("rule file %s is not mounted into prometheus", rf)
			continue
		}
		if filepath.Clean(filepath.Join(composeDir, host)) != filepath.Join("prometheus", "alerts.yml") {
			t.Errorf("rule file %s comes from %s, not deploy/prometheus/alerts.yml", rf, host)
		}
	}
	if len(prom.RuleFiles) == 0 {
		t.Error("prometheus loads no rule files")
	}
	cfg, err := config.Load(filepath.Join(composeDir, "pgone.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	_, httpPort, _ := net.SplitHostPort(cfg.HTTP.Listen)
	scraped := false
	for _, sc := range prom.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				if target == "pgone:"+httpPort && sc.JobName == "pgone" {
					scraped = true
				}
			}
		}
	}
	if !scraped {
		t.Errorf("prometheus does not scrape pgone:%s as job pgone", httpPort)
	}

	gm := mounts(t, c, "grafana")
	var ds struct {
		Datasources []struct {
			UID string `yaml:"uid"`
			URL string `yaml:"url"`
		} `yaml:"datasources"`
	}
	readYAML(t, filepath.Join(composeDir, gm["/etc/grafana/provisioning/datasources/prometheus.yml"]), &ds)
	if len(ds.Datasources) != 1 || ds.Datasources[0].URL != "http://prometheus:9090" {
		t.Errorf("grafana's datasource %+v is not http://prometheus:9090", ds.Datasources)
	}
	if !containsPort(c.Services["prometheus"].Ports, "9090") {
		t.Error("prometheus does not publish 9090")
	}
	var dp struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, filepath.Join(composeDir, gm["/etc/grafana/provisioning/dashboards/pgone.yml"]), &dp)
	if len(dp.Providers) != 1 {
		t.Fatalf("dashboard providers: %+v", dp.Providers)
	}
	dash, ok := gm[dp.Providers[0].Options.Path+"/pgone.json"]
	if !ok || filepath.Clean(filepath.Join(composeDir, dash)) != filepath.Join("grafana", "pgone.json") {
		t.Errorf("grafana does not mount deploy/grafana/pgone.json under %s", dp.Providers[0].Options.Path)
	}
}

func containsPort(ports []string, port string) bool {
	for _, p := range ports {
		if strings.HasSuffix(p, ":"+port) {
			return true
		}
	}
	return false
}
