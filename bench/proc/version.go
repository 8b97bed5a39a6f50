package proc

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// RunQuiet runs a short command (15s at most) and returns its trimmed
// combined output.
func RunQuiet(ctx context.Context, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// FirstLine is the first line a program prints, or why it printed none.
func FirstLine(ctx context.Context, name string, args ...string) string {
	out, err := RunQuiet(ctx, name, args...)
	if err != nil && out == "" {
		return fmt.Sprintf("unknown (%v)", err)
	}
	line, _, _ := strings.Cut(out, "\n")
	return strings.TrimSpace(line)
}

// Describe names the pgone build a result was measured on: the commit of
// the working directory's checkout (and whether it has uncommitted
// changes) and what the binary's version command prints, which it also
// returns alone.
func Describe(ctx context.Context, pgoneBin string) (build, version string) {
	version = FirstLine(ctx, pgoneBin, "version")
	commit, err := RunQuiet(ctx, "git", "rev-parse", "--short=12", "HEAD")
	if err != nil || commit == "" {
		commit = "no commit"
	} else if dirty, _ := RunQuiet(ctx, "git", "status", "--porcelain", "--untracked-files=no"); dirty != "" {
		commit += " + uncommitted changes"
	}
	return fmt.Sprintf("commit %s, binary reports %q", commit, version), version
}
