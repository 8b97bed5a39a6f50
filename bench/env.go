package main

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/pgone/pgone/bench/proc"
)

// versions are the versions of everything measured, for the results header.
type versions struct {
	Postgres  string `json:"postgres"`
	Pgbench   string `json:"pgbench"`
	Pgbouncer string `json:"pgbouncer"`
	Pgpool    string `json:"pgpool"`
	Redis     string `json:"redis"`
	pgone     string // bin/pgone version output
	Pgone     string `json:"pgone"` // commit, and pgone's own version
	Go        string `json:"go"`
}

// machine describes the host the run measured.
type machine struct {
	Cores    int     `json:"cores"`
	CPU      string  `json:"cpu"`
	MemGiB   float64 `json:"mem_gib"`
	Kernel   string  `json:"kernel"`
	Hostname string  `json:"hostname"`
}

func collectVersions(ctx context.Context, pgBinDir, pgoneBin string) versions {
	first := func(name string, args ...string) string { return proc.FirstLine(ctx, name, args...) }
	v := versions{
		Postgres: first(filepath.Join(pgBinDir, "postgres"), "--version"),
		Go:       runtime.Version(),
	}
	if p, err := findProgram("pgbench", pgBinDir); err == nil {
		v.Pgbench = first(p, "--version")
	}
	if p, err := findProgram("pgbouncer", "", "/usr/sbin"); err == nil {
		v.Pgbouncer = first(p, "--version")
	}
	if p, err := findProgram("pgpool", "", "/usr/sbin"); err == nil {
		v.Pgpool = first(p, "--version")
	}
	if p, err := findProgram("redis-server", ""); err == nil {
		v.Redis = first(p, "--version")
	}
	v.Pgone, v.pgone = proc.Describe(ctx, pgoneBin)
	return v
}

// versionNumber returns the first dotted number in a --version line
// ("pgpool-II version 4.3.5 (tamahomeboshi)" -> "4.3.5"), or the line.
func versionNumber(line string) string {
	for _, f := range strings.Fields(line) {
		f = strings.TrimPrefix(f, "v=")
		if len(f) > 2 && f[0] >= '0' && f[0] <= '9' && strings.Contains(f, ".") {
			return f
		}
	}
	return line
}

func describeMachine() machine {
	m := machine{Cores: runtime.NumCPU()}
	m.Hostname, _ = os.Hostname()
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "Linux " + strings.TrimSpace(string(b))
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
				kb, _ := strconv.ParseFloat(strings.Fields(rest)[0], 64)
				m.MemGiB = kb / (1 << 20)
				break
			}
		}
		f.Close()
	}
	return m
}
