package pgtest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Kill crashes the server as `kill -9` of every postgres process would: the
// postmaster and all its children die at once, with no shutdown checkpoint
// and nothing sent to clients. Start brings it back through crash recovery
// on the same port. Only the postmaster's death would leave its backends
// running and holding the shared memory, so they are killed too. It is a
// no-op if the server is not running.
func (s *Server) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proc
	if p == nil || p.Exited() {
		return nil
	}
	pid := p.cmd.Process.Pid
	// A stopped postmaster cannot fork a child we would miss.
	_ = syscall.Kill(pid, syscall.SIGSTOP)
	children := childPids(pid)
	for _, child := range children {
		_ = syscall.Kill(child, syscall.SIGKILL)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(stopGrace):
		return fmt.Errorf("pgtest: postgres pid %d survived SIGKILL", pid)
	}
	// A backend still dying holds the shared memory a restart needs.
	deadline := time.Now().Add(stopGrace)
	for _, child := range children {
		for alive(child) {
			if time.Now().After(deadline) {
				return fmt.Errorf("pgtest: postgres child pid %d survived SIGKILL", child)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	s.proc = nil
	s.logf("pgtest: killed postgres on port %d (pid %d and its children)", s.Port, pid)
	return nil
}

// Pause stops every process of the server with SIGSTOP, as an operator
// freezing a host or a stalled VM would: its sockets stay open and accept
// TCP connections, but nothing answers. Resume continues them.
func (s *Server) Pause() error { return s.signalAll(syscall.SIGSTOP) }

// Resume continues a server stopped by Pause.
func (s *Server) Resume() error { return s.signalAll(syscall.SIGCONT) }

// signalAll sends sig to the postmaster and every child it has.
func (s *Server) signalAll(sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil || s.proc.Exited() {
		return fmt.Errorf("pgtest: postgres on port %d is not running", s.Port)
	}
	pid := s.proc.cmd.Process.Pid
	if err := syscall.Kill(pid, sig); err != nil {
		return fmt.Errorf("pgtest: %s to postgres pid %d: %w", sig, pid, err)
	}
	for _, child := range childPids(pid) {
		_ = syscall.Kill(child, sig)
	}
	return nil
}

// alive reports whether pid is a process that has not exited (a zombie
// has exited).
func alive(pid int) bool {
	st := procState(pid)
	return st != "" && st != "Z" && st != "X"
}

// procState is the state letter of /proc/<pid>/stat ("R", "S", "T", "Z"
// ...), or "" if there is no such process.
func procState(pid int) string {
	state, _ := procStat(pid)
	return state
}

// ChildPids lists the processes the server's postmaster has forked
// (backends and background processes), for a test that signals some of
// them itself; nil if the server is not running. Kill, Pause and Resume
// already cover the whole server.
func (s *Server) ChildPids() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil || s.proc.Exited() {
		return nil
	}
	return childPids(s.proc.cmd.Process.Pid)
}

// childPids lists the processes whose parent is ppid, from /proc.
func childPids(ppid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if _, parent := procStat(pid); parent == ppid {
			out = append(out, pid)
		}
	}
	return out
}

// procStat reads the state letter and the parent pid, the third and fourth
// fields of /proc/<pid>/stat; ("", -1) if there is no such process. The
// second field, the command name in parentheses, may contain spaces, so
// fields are counted after its closing parenthesis.
func procStat(pid int) (state string, ppid int) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return "", -1
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return "", -1
	}
	fields := bytes.Fields(b[i+1:])
	if len(fields) < 2 {
		return "", -1
	}
	ppid, err = strconv.Atoi(string(fields[1]))
	if err != nil {
		ppid = -1
	}
	return string(fields[0]), ppid
}

// Signal sends sig to the postmaster only: SIGTERM starts a smart shutdown
// (sessions go on, new logins get 57P03), SIGHUP reloads the config.
func (s *Server) Signal(sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil || s.proc.Exited() {
		return fmt.Errorf("pgtest: postgres on port %d is not running", s.Port)
	}
	return syscall.Kill(s.proc.cmd.Process.Pid, sig)
}
