package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// child is one long-running process the bench started (pgbouncer, pgpool,
// pgone). It runs in its own process group, so a Ctrl-C on the terminal
// reaches only the bench, which then stops children in order; the parent
// death signal stops it if the bench itself is killed.
type child struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error
}

// startChild starts cmd with its output in logPath. The goroutine that forks
// stays locked to its OS thread until the child exits: Linux sends the
// parent death signal when the forking thread ends, not the process.
func startChild(name string, cmd *exec.Cmd, logPath string, deathSig syscall.Signal) (*child, error) {
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
	c := &child{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		c.err = cmd.Wait()
		close(c.done)
	}()
	err = <-started
	logFile.Close()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop sends sig to the child, waits up to grace, then SIGKILLs the child's
// process group (its own forks, such as pgpool's children, included).
func (c *child) stop(sig syscall.Signal, grace time.Duration) error {
	pgid := c.pid()
	if !c.exited() {
		_ = c.cmd.Process.Signal(sig)
		select {
		case <-c.done:
		case <-time.After(grace):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-c.done
			return fmt.Errorf("%s (pid %d) ignored %s for %s; killed", c.name, pgid, sig, grace)
		}
	}
	// Forks that outlived the leader (they would hold ports) go too.
	if len(treePids(pgid, true)) > 0 {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
	return nil
}

// logTail returns the last lines of the child's log, for error messages.
func (c *child) logTail() string { return tailFile(c.logPath, 20) }

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

// osAccount is the unprivileged OS user pgbouncer and pgpool run as: both
// refuse to run as root. Not root: they run as the caller.
type osAccount struct {
	uid, gid int
	cred     *syscall.Credential
}

func lookupAccount() (osAccount, error) {
	if os.Geteuid() != 0 {
		return osAccount{uid: -1, gid: -1}, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return osAccount{}, fmt.Errorf("running as root, pgbouncer and pgpool must run as the OS user postgres: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return osAccount{uid: uid, gid: gid, cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}, nil
}

func (a osAccount) chown(paths ...string) error {
	if a.cred == nil {
		return nil
	}
	for _, p := range paths {
		if err := os.Chown(p, a.uid, a.gid); err != nil {
			return err
		}
	}
	return nil
}

// mkdir creates a directory owned by the account.
func (a osAccount) mkdir(path string) error {
	if err := os.MkdirAll(path, 0o755); err != nil {
		return err
	}
	return a.chown(path)
}

// writeFile writes a file readable only by the account.
func (a osAccount) writeFile(path, content string) error {
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return err
	}
	return a.chown(path)
}

// command builds a command that runs as the account with HOME in dir and no
// inherited PG* variables.
func (a osAccount) command(dir, path string, args ...string) *exec.Cmd {
	cmd := exec.Command(path, args...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: a.cred}
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "PG") || name == "HOME" {
			continue
		}
		env = append(env, kv)
	}
	cmd.Env = append(env, "HOME="+dir)
	return cmd
}

// raiseFileLimit raises this process's open-file limit to its hard limit.
// Calling Setrlimit also makes os/exec pass the raised limit on to children
// (pgone, pgbouncer, pgpool), which hold thousands of client sockets.
func raiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	return lim.Cur, nil
}

// usage is what a process tree has consumed or holds at one moment.
type usage struct {
	cpu   float64 // seconds of user+system CPU, reaped children included
	rssKB int64   // see treeUsage
	procs int
}

// clockTick is USER_HZ, 100 on every Linux architecture Go supports.
const clockTick = 100.0

// procStat is the part of /proc/PID/stat the bench reads.
type procStat struct {
	ppid, pgid int
	cpuTicks   int64 // utime+stime+cutime+cstime
}

func readStat(pid int) (procStat, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, false
	}
	// The command name is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, false
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime is field 14.
	if len(f) < 15 {
		return procStat{}, false
	}
	var st procStat
	st.ppid, _ = strconv.Atoi(f[1])
	st.pgid, _ = strconv.Atoi(f[2])
	for _, k := range []int{11, 12, 13, 14} {
		v, _ := strconv.ParseInt(f[k], 10, 64)
		st.cpuTicks += v
	}
	return st, true
}

// treePids returns root and its live descendants; withGroup adds members of
// root's process group (children a daemon re-parented).
func treePids(root int, withGroup bool) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	parent := map[int]int{}
	var inGroup []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, ok := readStat(pid)
		if !ok {
			continue
		}
		parent[pid] = st.ppid
		if withGroup && st.pgid == root && pid != root {
			inGroup = append(inGroup, pid)
		}
	}
	var out []int
	seen := map[int]bool{}
	for pid := range parent {
		for p, depth := pid, 0; p > 1 && depth < 64; p, depth = parent[p], depth+1 {
			if p == root {
				out = append(out, pid)
				seen[pid] = true
				break
			}
		}
	}
	for _, pid := range inGroup {
		if !seen[pid] {
			out = append(out, pid)
		}
	}
	return out
}

// treeUsage sums CPU over root's tree: utime+stime+cutime+cstime of every
// live process counts each exited process once, in whoever reaped it. Memory
// is the private resident memory (RssAnon) of every process plus the file
// and shared pages of the root once: for one process that is its VmRSS; for
// pgpool or PostgreSQL it does not count the shared segment once per child.
func treeUsage(roots ...int) usage {
	var u usage
	for _, root := range roots {
		if root <= 0 {
			continue
		}
		for _, pid := range treePids(root, false) {
			st, ok := readStat(pid)
			if !ok {
				continue
			}
			u.procs++
			u.cpu += float64(st.cpuTicks) / clockTick
			anon, file, shmem := readRSS(pid)
			u.rssKB += anon
			if pid == root {
				u.rssKB += file + shmem
			}
		}
	}
	return u
}

func readRSS(pid int) (anon, file, shmem int64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		key, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var dst *int64
		switch key {
		case "RssAnon":
			dst = &anon
		case "RssFile":
			dst = &file
		case "RssShmem":
			dst = &shmem
		default:
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) > 0 {
			*dst, _ = strconv.ParseInt(fields[0], 10, 64)
		}
	}
	return anon, file, shmem
}

// sampler records the peak memory of process trees while a run goes on.
type sampler struct {
	roots  []int
	stop   chan struct{}
	done   chan struct{}
	peakKB int64
}

func startSampler(roots []int, every time.Duration) *sampler {
	s := &sampler{roots: roots, stop: make(chan struct{}), done: make(chan struct{})}
	if len(roots) == 0 {
		close(s.done)
		return s
	}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if u := treeUsage(s.roots...); u.rssKB > s.peakKB {
				s.peakKB = u.rssKB
			}
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// finish stops sampling, takes a last sample and returns the peak in KiB.
func (s *sampler) finish() int64 {
	if len(s.roots) == 0 {
		return 0
	}
	close(s.stop)
	<-s.done
	if u := treeUsage(s.roots...); u.rssKB > s.peakKB {
		s.peakKB = u.rssKB
	}
	return s.peakKB
}

// runQuiet runs a short command and returns its trimmed output.
func runQuiet(ctx context.Context, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// findProgram looks for name in the PostgreSQL bin dir, then in dirs, then
// on PATH, skipping Debian's pg_wrapper links.
func findProgram(name, pgBinDir string, dirs ...string) (string, error) {
	for _, d := range append([]string{pgBinDir}, dirs...) {
		if d == "" {
			continue
		}
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found; run make bench-deps (or bench/deps.sh)", name)
	}
	return p, nil
}

// serverConns counts the established TCP connections from root's process
// tree to any of ports on 127.0.0.1: the server connections a pooler holds.
func serverConns(root int, ports []int) int {
	inodes := map[string]bool{}
	for _, pid := range treePids(root, false) {
		dir := fmt.Sprintf("/proc/%d/fd", pid)
		fds, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(dir, fd.Name()))
			if err != nil {
				continue
			}
			if inode, ok := strings.CutPrefix(link, "socket:["); ok {
				inodes[strings.TrimSuffix(inode, "]")] = true
			}
		}
	}
	want := map[string]bool{}
	for _, p := range ports {
		want[fmt.Sprintf("%04X", p)] = true
	}
	n := 0
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			// sl local rem st tx:rx tr:when retrnsmt uid timeout inode
			if len(f) < 10 || f[3] != "01" {
				continue
			}
			_, remPort, _ := strings.Cut(f[2], ":")
			if want[remPort] && inodes[f[9]] {
				n++
			}
		}
	}
	return n
}
