package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pgone/pgone/bench/proc"
)

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
		for _, pid := range proc.TreePids(root, false) {
			st, ok := proc.ReadStat(pid)
			if !ok {
				continue
			}
			u.procs++
			u.cpu += float64(st.CPUTicks) / clockTick
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
	for _, pid := range proc.TreePids(root, false) {
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
