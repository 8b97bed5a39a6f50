package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// requireTool returns the path of a program the deploy checks need, or fails
// the test saying how to install it: a machine without the tool must not
// pass by skipping. env names a variable that may point at the program.
func requireTool(t *testing.T, name, env, install string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s=%s: %v", env, p, err)
		}
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range toolDirs() {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	t.Fatalf("%s not found (PATH, %s, %v): %s", name, env, toolDirs(), install)
	return ""
}

// toolDirs are where scripts/deps.sh installs tools that are not Debian
// packages (helm): $PGONE_TOOLS_DIR, else ~/.cache/pgone-tools/bin.
func toolDirs() []string {
	if d := os.Getenv("PGONE_TOOLS_DIR"); d != "" {
		return []string{d}
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return nil
	}
	return []string{filepath.Join(home, ".cache", "pgone-tools", "bin")}
}

// run runs a tool and fails the test with its output if it fails.
func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", filepath.Base(name), args, err, out)
	}
	return string(out)
}
