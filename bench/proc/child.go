package proc

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/pgone/pgone/internal/pgtest"
)

// Child is one long-running process a command started.
type Child struct {
	Name    string
	cmd     *exec.Cmd
	p       *pgtest.Process // waits for cmd
	logPath string
}

// Start starts cmd with its stdout and stderr appended to logPath, in its
// own process group, with deathSig as its parent death signal. A
// Credential already in cmd.SysProcAttr is kept. pgtest.StartProcess forks
// it from an OS thread that lives as long as the child, so the death
// signal fires only when the command itself dies.
func Start(name string, cmd *exec.Cmd, logPath string, deathSig syscall.Signal) (*Child, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = deathSig
	p, err := pgtest.StartProcess(cmd)
	logFile.Close()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return &Child{Name: name, cmd: cmd, p: p, logPath: logPath}, nil
}

// Pid is the child's pid, which is also its process group id.
func (c *Child) Pid() int { return c.p.Pid() }

// Exited reports whether the child has exited.
func (c *Child) Exited() bool { return c.p.Exited() }

// Err is the child's exit error, nil while it runs.
func (c *Child) Err() error {
	if !c.Exited() {
		return nil
	}
	return c.p.Err()
}

// Signal sends sig to the child itself if it still runs.
func (c *Child) Signal(sig syscall.Signal) error {
	if c.Exited() {
		return fmt.Errorf("%s (pid %d) has exited: %v", c.Name, c.Pid(), c.p.Err())
	}
	return c.cmd.Process.Signal(sig)
}

// Stop sends sig to the child, waits up to grace, then SIGKILLs the
// child's process group (its own forks, such as pgpool's children,
// included).
func (c *Child) Stop(sig syscall.Signal, grace time.Duration) error {
	pgid := c.Pid()
	if !c.Exited() {
		_ = c.cmd.Process.Signal(sig)
		select {
		case <-c.p.Done():
		case <-time.After(grace):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-c.p.Done()
			return fmt.Errorf("%s (pid %d) ignored %s for %s; killed", c.Name, pgid, sig, grace)
		}
	}
	// Forks that outlived the leader (they would hold ports) go too.
	if len(TreePids(pgid, true)) > 0 {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
	return nil
}

// LogTail returns the last 20 lines of the child's log, for error messages.
func (c *Child) LogTail() string { return tailFile(c.logPath, 20) }

// tailFile returns the last lines of path under a header naming it.
func tailFile(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return "--- " + path + " ---\n" + strings.Join(all, "\n")
}
