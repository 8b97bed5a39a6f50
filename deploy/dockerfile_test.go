package deploy

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestDockerfile checks the image recipe without a container engine (none
// runs on the machines this was written on; deploy/README.md says why): the
// Go version is go.mod's, the runtime runs as a non-root user, the health
// check calls a pgone subcommand on the metrics port it exposes, and
// .dockerignore keeps what the build needs.
func TestDockerfile(t *testing.T) {
	df := readFile(t, "../Dockerfile")
	gomod := readFile(t, "../go.mod")
	goVersion := regexp.MustCompile(`(?m)^go (\S+)$`).FindStringSubmatch(gomod)
	if goVersion == nil || !strings.Contains(df, "ARG GO_VERSION="+goVersion[1]+"\n") {
		t.Errorf("the Dockerfile's GO_VERSION is not go.mod's go %v", goVersion)
	}
	for _, want := range []string{
		"CGO_ENABLED=1",    // pg_query_go is C
		"USER 65532:65532", // non-root (distroless nonroot)
		"EXPOSE 6432 9930", // client and metrics ports
		`"healthcheck", "--url", "http://127.0.0.1:9930/healthz"`,
		`ENTRYPOINT ["/usr/local/bin/pgone"]`,
		`CMD ["serve", "--config", "/etc/pgone/pgone.yaml"]`,
	} {
		if !strings.Contains(df, want) {
			t.Errorf("the Dockerfile lacks %s", want)
		}
	}
	if n := strings.Count(df, "\nFROM "); n != 2 {
		t.Errorf("%d FROM lines, want a build and a runtime stage", n)
	}
	if !strings.Contains(readFile(t, "../cmd/pgone/main.go"), `case "healthcheck":`) {
		t.Error("the HEALTHCHECK calls pgone healthcheck, which cmd/pgone does not have")
	}
	ignore := readFile(t, "../.dockerignore")
	for _, line := range strings.Split(ignore, "\n") {
		line = strings.TrimSpace(line)
		for _, needed := range []string{"go.mod", "go.sum", "cmd", "configs", "proxy", "pool", "router", "cache", "config", "pgerr", "internal"} {
			if line == needed || line == needed+"/" || line == "/"+needed {
				t.Errorf(".dockerignore drops %s, which the build needs", needed)
			}
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
