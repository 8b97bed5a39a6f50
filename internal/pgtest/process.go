package pgtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Process is a child process supervised as pgtest supervises its servers:
// forked from an OS thread that lives as long as the child, so a parent
// death signal set in cmd.SysProcAttr.Pdeathsig fires only when the whole
// parent process dies. Benchmarks and tools that start servers of their
// own (pgone, pgbouncer) use it too.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the child has exited
	err  error         // cmd.Wait's result; valid once done is closed
}

// StartProcess starts cmd and waits for it in a goroutine that stays locked
// to the OS thread that forked it: Linux delivers the parent-death signal
// when that thread exits, not the process, so the thread must outlive the
// child unless the whole process dies.
func StartProcess(cmd *exec.Cmd) (*Process, error) {
	p := &Process{cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}

// Pid is the child's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed once the child has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is the child's exit error (cmd.Wait's), valid once Done is closed.
func (p *Process) Err() error {
	<-p.done
	return p.err
}

// Exited reports whether the child has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends sig, waits up to grace for the exit, then SIGKILLs. It returns
// nil if the process had exited or exits cleanly on sig.
func (p *Process) Stop(sig syscall.Signal, grace time.Duration) error {
	if p.Exited() {
		return nil
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return p.err
	case <-time.After(grace):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	return fmt.Errorf("pid %d did not exit within %s of %s; killed", p.cmd.Process.Pid, grace, sig)
}

// account is the OS identity PostgreSQL runs as. cred is nil when the caller
// is not root: the servers then run as the caller.
type account struct {
	uid, gid int
	cred     *syscall.Credential
}

func postgresAccount() (account, error) {
	if os.Geteuid() != 0 {
		return account{uid: -1, gid: -1}, nil
	}
	u, err := user.Lookup(SuperUser)
	if err != nil {
		return account{}, fmt.Errorf("pgtest: running as root, PostgreSQL must run as the OS user %q, which does not exist (%v); installing the postgresql package creates it", SuperUser, err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return account{}, fmt.Errorf("pgtest: uid of %q: %w", SuperUser, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return account{}, fmt.Errorf("pgtest: gid of %q: %w", SuperUser, err)
	}
	return account{uid: uid, gid: gid, cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}, nil
}

// chown gives path to the account; a no-op when not root.
func (a account) chown(path string) error {
	if a.cred == nil {
		return nil
	}
	return os.Chown(path, a.uid, a.gid)
}

// command builds a PostgreSQL command that runs as the account in dir, with
// a clean environment: no inherited PG* variables (they would redirect
// libpq tools), the C locale (log text we match is English), and HOME in dir
// (root's HOME is unreadable to postgres).
func (a account) command(ctx context.Context, dir, path string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: a.cred}
	cmd.Env = cleanEnv(dir)
	return cmd
}

func cleanEnv(home string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "PG") || strings.HasPrefix(name, "LC_") || name == "LANG" || name == "LANGUAGE" || name == "HOME" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LC_ALL=C", "LANG=C", "HOME="+home)
}

// runLogged runs cmd to completion with its output in logPath and returns an
// error carrying the log tail if it fails.
func runLogged(cmd *exec.Cmd, logPath string) error {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = f, f
	err = cmd.Run()
	f.Close()
	if err != nil {
		return fmt.Errorf("%s failed: %v\n%s", strings.Join(cmd.Args, " "), err, logTail(logPath, 0))
	}
	return nil
}

// logTail returns about the last 25 lines of the file written after offset.
func logTail(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	const window = 4096
	fi, err := f.Stat()
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	start := max(offset, fi.Size()-window)
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	b, _ := io.ReadAll(f)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if start > offset && len(lines) > 1 {
		lines = lines[1:] // drop the partial first line
	}
	if len(lines) > 25 {
		lines = lines[len(lines)-25:]
	}
	return "--- " + path + " (tail) ---\n" + strings.Join(lines, "\n")
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// errAddrInUse marks a start that failed because another process took the
// port between FreePort and bind; the caller retries with a new port.
var errAddrInUse = errors.New("address already in use")

func logSays(path string, offset int64, text string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return false
	}
	b, _ := io.ReadAll(f)
	return strings.Contains(string(b), text)
}
