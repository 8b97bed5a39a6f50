package deploy

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/pgone/pgone/config"
)

const (
	chartDir    = "helm/pgone"
	installHelm = "build it with scripts/deps.sh (make deps): GOBIN=~/.cache/pgone-tools/bin go install helm.sh/helm/v3/cmd/helm@v3.21.4, or put helm on PATH"
)

// helmCmd runs helm with its cache, config and data in a temp dir, so the
// test neither reads nor writes the user's helm setup.
func helmCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	helm := requireTool(t, "helm", "PGONE_HELM", installHelm)
	home := t.TempDir()
	cmd := exec.Command(helm, args...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"))
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String() + errOut.String(), err
	}
	return out.String(), nil
}

func TestHelmLint(t *testing.T) {
	if out, err := helmCmd(t, "lint", "--strict", chartDir); err != nil {
		t.Fatalf("helm lint --strict: %v\n%s", err, out)
	}
}

// k8sObject is the part of a rendered manifest the checks read.
type k8sObject struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	StringData map[string]string `yaml:"stringData"`
	Spec       yaml.Node         `yaml:"spec"`
}

func helmTemplate(t *testing.T, args ...string) map[string]k8sObject {
	t.Helper()
	out, err := helmCmd(t, append([]string{"template", "rel", chartDir}, args...)...)
	if err != nil {
		t.Fatalf("helm template %v: %v\n%s", args, err, out)
	}
	objs := map[string]k8sObject{}
	dec := yaml.NewDecoder(strings.NewReader(out))
	for {
		var o k8sObject
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("helm template output: %v", err)
		}
		if o.Kind != "" {
			objs[o.Kind] = o
		}
	}
	return objs
}

func decodeSpec(o k8sObject, v any) error { return o.Spec.Decode(v) }

type deploymentSpec struct {
	Replicas int `yaml:"replicas"`
	Template struct {
		Spec struct {
			TerminationGracePeriodSeconds int `yaml:"terminationGracePeriodSeconds"`
			SecurityContext               struct {
				RunAsNonRoot bool `yaml:"runAsNonRoot"`
			} `yaml:"securityContext"`
			Containers []struct {
				Args  []string `yaml:"args"`
				Ports []struct {
					Name          string `yaml:"name"`
					ContainerPort int    `yaml:"containerPort"`
				} `yaml:"ports"`
				LivenessProbe  probe `yaml:"livenessProbe"`
				ReadinessProbe probe `yaml:"readinessProbe"`
				Lifecycle      struct {
					PreStop struct {
						Sleep struct {
							Seconds int `yaml:"seconds"`
						} `yaml:"sleep"`
					} `yaml:"preStop"`
				} `yaml:"lifecycle"`
				Resources struct {
					Requests map[string]string `yaml:"requests"`
				} `yaml:"resources"`
			} `yaml:"containers"`
			Volumes []struct {
				Secret struct {
					SecretName string `yaml:"secretName"`
				} `yaml:"secret"`
			} `yaml:"volumes"`
		} `yaml:"spec"`
	} `yaml:"template"`
}

type probe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
}

// TestHelmTemplateDefaults renders the chart with its default values: the
// config in the Secret is a valid pgone config listening where the probes
// and ports point, and SIGTERM has time to drain.
func TestHelmTemplateDefaults(t *testing.T) {
	objs := helmTemplate(t)
	for _, kind := range []string{"Deployment", "Service", "Secret", "PodDisruptionBudget"} {
		if _, ok := objs[kind]; !ok {
			t.Errorf("no %s rendered", kind)
		}
	}
	if _, ok := objs["ServiceMonitor"]; ok {
		t.Error("a ServiceMonitor is rendered by default (it needs prometheus-operator's CRDs)")
	}
	var dep deploymentSpec
	if err := decodeSpec(objs["Deployment"], &dep); err != nil {
		t.Fatal(err)
	}
	if dep.Replicas != 2 {
		t.Errorf("replicas %d, want 2", dep.Replicas)
	}
	pod := dep.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Containers))
	}
	c := pod.Containers[0]
	if !pod.SecurityContext.RunAsNonRoot {
		t.Error("the pod may run as root")
	}
	if strings.Join(c.Args, " ") != "serve --config /etc/pgone/pgone.yaml" {
		t.Errorf("args %v", c.Args)
	}
	ports := map[string]int{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe.HTTPGet.Path != "/readyz" ||
		c.LivenessProbe.HTTPGet.Port != "metrics" || c.ReadinessProbe.HTTPGet.Port != "metrics" {
		t.Errorf("probes %+v %+v, want /healthz and /readyz on port metrics", c.LivenessProbe, c.ReadinessProbe)
	}
	if c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" {
		t.Errorf("resource requests %v", c.Resources.Requests)
	}
	if len(pod.Volumes) != 1 || pod.Volumes[0].Secret.SecretName != objs["Secret"].Metadata.Name {
		t.Errorf("the config volume does not mount the rendered Secret %q", objs["Secret"].Metadata.Name)
	}

	// The rendered config is one pgone accepts.
	path := filepath.Join(t.TempDir(), "pgone.yaml")
	if err := os.WriteFile(path, []byte(objs["Secret"].StringData["pgone.yaml"]), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("the chart's pgone.yaml: %v", err)
	}
	if cfg.Proxy.Listen != "0.0.0.0:6432" || ports["postgres"] != 6432 {
		t.Errorf("listen %s, container port postgres %d", cfg.Proxy.Listen, ports["postgres"])
	}
	if cfg.HTTP.Listen != "0.0.0.0:9930" || ports["metrics"] != 9930 {
		t.Errorf("http.listen %s, container port metrics %d", cfg.HTTP.Listen, ports["metrics"])
	}
	// Kubernetes kills the pod terminationGracePeriodSeconds after preStop
	// starts; pgone needs preStop's sleep plus shutdown_timeout.
	need := time.Duration(c.Lifecycle.PreStop.Sleep.Seconds)*time.Second + cfg.Proxy.Limits.ShutdownTimeout
	if c.Lifecycle.PreStop.Sleep.Seconds == 0 || time.Duration(pod.TerminationGracePeriodSeconds)*time.Second <= need {
		t.Errorf("terminationGracePeriodSeconds %d does not cover preStop %ds + shutdown_timeout %s",
			pod.TerminationGracePeriodSeconds, c.Lifecycle.PreStop.Sleep.Seconds, cfg.Proxy.Limits.ShutdownTimeout)
	}
}

// TestHelmTemplateOptions: the ServiceMonitor when asked, an existing Secret
// instead of the rendered one, and a config whose ports disagree with the
// chart refused at render time.
func TestHelmTemplateOptions(t *testing.T) {
	objs := helmTemplate(t, "--set", "serviceMonitor.enabled=true", "--set", "prometheusRule.enabled=true",
		"--set", "replicaCount=3", "--set", "podDisruptionBudget.enabled=false")
	if _, ok := objs["ServiceMonitor"]; !ok {
		t.Error("serviceMonitor.enabled=true rendered no ServiceMonitor")
	}
	checkPrometheusRule(t, objs["PrometheusRule"])
	if _, ok := objs["PodDisruptionBudget"]; ok {
		t.Error("podDisruptionBudget.enabled=false still rendered one")
	}
	var dep deploymentSpec
	if err := decodeSpec(objs["Deployment"], &dep); err != nil {
		t.Fatal(err)
	}
	if dep.Replicas != 3 {
		t.Errorf("replicaCount=3 rendered %d replicas", dep.Replicas)
	}

	objs = helmTemplate(t, "--set", "existingSecret=my-pgone-config")
	if _, ok := objs["Secret"]; ok {
		t.Error("existingSecret set, yet the chart renders its own Secret")
	}
	if err := decodeSpec(objs["Deployment"], &dep); err != nil {
		t.Fatal(err)
	}
	if v := dep.Template.Spec.Volumes; len(v) != 1 || v[0].Secret.SecretName != "my-pgone-config" {
		t.Errorf("volumes %+v, want the existing secret my-pgone-config", v)
	}

	for _, bad := range [][]string{
		{"--set", "config.listen=0.0.0.0:5432"},
		{"--set", "config.http.listen=127.0.0.1:9931"},
	} {
		out, err := helmCmd(t, append([]string{"template", "rel", chartDir}, bad...)...)
		if err == nil || !strings.Contains(out, "must") {
			t.Errorf("helm template %v: %v, want a refusal naming the port\n%s", bad, err, out)
		}
	}
}

// checkPrometheusRule: the chart's PrometheusRule carries exactly the rules
// of deploy/prometheus/alerts.yml (files/alerts.yml links to it), templates
// ({{ $labels.x }}) untouched.
func checkPrometheusRule(t *testing.T, o k8sObject) {
	t.Helper()
	if o.Kind != "PrometheusRule" {
		t.Fatal("prometheusRule.enabled=true rendered no PrometheusRule")
	}
	orig := readFile(t, "prometheus/alerts.yml")
	var rendered, want any
	if err := o.Spec.Decode(&rendered); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal([]byte(orig), &want); err != nil {
		t.Fatal(err)
	}
	got, _ := yaml.Marshal(rendered)
	exp, _ := yaml.Marshal(want)
	if string(got) != string(exp) {
		t.Errorf("the PrometheusRule's spec is not alerts.yml:\n%s", got)
	}
}
