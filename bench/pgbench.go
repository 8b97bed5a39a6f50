package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Result is one run of one cell against one target.
type Result struct {
	TPS    float64 // transactions per second (storm, idle: clients per second)
	AvgMs  float64 // average latency
	P50Ms  float64 // median latency
	P99Ms  float64 // 99th percentile latency
	Failed int64   // failed transactions or clients
	Err    string  // why the run failed; empty if it did not

	ProxyCPU   float64 // CPU seconds of the proxy's processes during the run
	ProxyRSSKB int64   // peak memory of the proxy's processes
	ServerCPU  float64 // CPU seconds of the primary and replica

	ConnMs   float64 // pgbench: initial connection time
	Attempts int     // pgbench: 2 if the first run spent its time connecting

	Held          int     // idle: clients connected at once
	MemPerClientK float64 // idle: proxy RSS (direct: PostgreSQL growth) per held client

	Wall time.Duration

	// Tx is the number of transactions pgbench completed (0 if unknown).
	Tx int64
	// ClosedBefore is how many server connections the poolers held that
	// were closed before this direct run; OtherBackends the most backends
	// of the bench user, the run's own clients aside, seen on the primary
	// while it ran (-1: not sampled).
	ClosedBefore  int `json:",omitempty"`
	OtherBackends int

	// Stmts are the Go-client workloads' per-statement latencies (mix.go).
	Stmts []StmtStat `json:",omitempty"`
	// CacheHits and CacheMisses are the cache target's SHOW CACHE counters
	// over the run; CacheMeasured says they were read.
	CacheHits, CacheMisses int64 `json:",omitempty"`
	CacheMeasured          bool  `json:",omitempty"`
	// Writes the mix's writer committed; VersionReads the reads checked
	// against them, StaleReads those that were stale (stale.go) and
	// StaleLag the most versions one was behind.
	Writes, VersionReads, StaleReads, StaleLag int64 `json:",omitempty"`

	noTx bool // pgbench processed no transaction
}

// failed reports whether the run produced no usable number.
func (r Result) failed() bool { return r.Err != "" && r.TPS == 0 && r.Held == 0 }

// runPgbench runs one pgbench cell against t. Latency percentiles come from
// pgbench's per-transaction log (-l): its third column is each
// transaction's latency in microseconds.
//
// pgbench's -T clock starts before its clients connect, while its tps
// leaves the connection time out. Logins cost a fork on PostgreSQL, so 300
// clients can take seconds to connect; -T is the run length plus the
// connection time last measured for this target and database, scaled to
// the client count. A run whose connections ate more than half of -T is
// run once more with the time it really needed.
func runPgbench(ctx context.Context, env *Env, t *Target, db string, w *Workload, clients int) Result {
	key := t.Name + "/" + db
	fixed := slices.Contains(w.Pgbench, "-t")
	length := env.duration
	if w.Duration > 0 {
		length = w.Duration
	}
	var res Result
	for attempt := 1; attempt <= 2; attempt++ {
		allowance := env.connMsPerClient[key] * float64(clients) / 1000
		secs := int(math.Round(length.Seconds() + allowance))
		res = pgbenchOnce(ctx, env, t, db, w, clients, secs, fixed)
		res.Attempts = attempt
		switch {
		case res.ConnMs > 0:
			env.connMsPerClient[key] = res.ConnMs / float64(clients)
		case res.noTx:
			// Nothing ran: the logins took all of -T at least.
			env.connMsPerClient[key] = max(env.connMsPerClient[key]*2, float64(secs)*1000/float64(clients))
		}
		short := res.noTx || (!fixed && res.ConnMs/1000 > float64(secs)-length.Seconds()/2)
		if fixed || !short || ctx.Err() != nil {
			break
		}
	}
	if res.noTx && res.Err == "" {
		res.Err = "no transaction completed within -T (connecting the clients took longer)"
	}
	return res
}

// pgbenchOnce runs pgbench once, for secs seconds or, if fixed, for the
// transaction count in the workload's own arguments.
func pgbenchOnce(ctx context.Context, env *Env, t *Target, db string, w *Workload, clients, secs int, fixed bool) Result {
	logDir, err := os.MkdirTemp(env.dir, "pgbench-")
	if err != nil {
		return Result{Err: err.Error()}
	}
	defer os.RemoveAll(logDir)
	args := []string{
		"-h", "127.0.0.1", "-p", strconv.Itoa(t.Port), "-U", env.user,
		"-n", "-c", strconv.Itoa(clients), "-j", strconv.Itoa(min(clients, env.threads)),
		"-l", "--log-prefix", filepath.Join(logDir, "tx"),
	}
	// A hung target must not stall the run for long: the limit is the run
	// plus a minute for connecting and reporting.
	limit := time.Minute
	if !fixed {
		args = append(args, "-T", strconv.Itoa(secs))
		limit += time.Duration(secs) * time.Second
	}
	args = append(args, w.Pgbench...)
	if w.Script != "" {
		path := filepath.Join(logDir, "script.sql")
		if err := os.WriteFile(path, []byte(w.Script), 0o644); err != nil {
			return Result{Err: err.Error()}
		}
		args = append(args, "-f", path)
	}
	args = append(args, db)
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, env.pgbench, args...)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+env.password, "PGSSLMODE=disable", "PGCONNECT_TIMEOUT=60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	runErr := cmd.Run()
	res := parsePgbench(stdout.String(), stderr.String())
	res.Wall = time.Since(start)
	if runErr != nil && res.Err == "" {
		res.Err = fmt.Sprintf("pgbench: %v: %s", runErr, truncate(stderr.String(), 200))
		if ctx.Err() != nil {
			res.Err = fmt.Sprintf("pgbench: %v", ctx.Err())
		}
	}
	if res.TPS > 0 {
		lat, err := readTxLatencies(logDir)
		if err != nil && res.Err == "" {
			res.Err = err.Error()
		}
		res.P50Ms = percentile(lat, 0.5) / 1000
		res.P99Ms = percentile(lat, 0.99) / 1000
	}
	return res
}

// parsePgbench reads pgbench's summary (stdout) and errors (stderr).
func parsePgbench(stdout, stderr string) Result {
	var r Result
	for _, line := range strings.Split(stdout, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "tps = "):
			r.TPS = firstFloat(strings.TrimPrefix(line, "tps = "))
		case strings.HasPrefix(line, "latency average = "):
			r.AvgMs = firstFloat(strings.TrimPrefix(line, "latency average = "))
		case strings.HasPrefix(line, "initial connection time = "):
			r.ConnMs = firstFloat(strings.TrimPrefix(line, "initial connection time = "))
		case strings.HasPrefix(line, "number of transactions actually processed: "):
			// "67751", or "1000/1000" for a run of fixed length (-t).
			done, _, _ := strings.Cut(strings.TrimPrefix(line, "number of transactions actually processed: "), "/")
			r.Tx = int64(firstFloat(done))
			r.noTx = r.Tx == 0
		case strings.HasPrefix(line, "number of failed transactions: "):
			r.Failed = int64(firstFloat(strings.TrimPrefix(line, "number of failed transactions: ")))
		}
	}
	var errs []string
	aborted := 0
	for _, line := range strings.Split(stderr, "\n") {
		line = strings.TrimSpace(line)
		msg, ok := strings.CutPrefix(line, "pgbench: error: ")
		if !ok {
			msg, ok = strings.CutPrefix(line, "pgbench: fatal: ")
		}
		if !ok {
			continue
		}
		if strings.HasPrefix(msg, "Run was aborted") {
			continue
		}
		if strings.Contains(msg, "aborted") {
			aborted++
		}
		if len(errs) < 3 && !slices.Contains(errs, msg) {
			errs = append(errs, msg)
		}
	}
	if len(errs) > 0 {
		r.Err = strings.Join(errs, "; ")
		if aborted > 1 {
			r.Err = fmt.Sprintf("%d clients aborted: %s", aborted, r.Err)
		}
	}
	return r
}

func firstFloat(s string) float64 {
	f := strings.Fields(s)
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// readTxLatencies returns the latency in microseconds of every successful
// transaction in pgbench's per-transaction logs in dir. A line is
// "client_id transaction_no time script_no time_epoch time_us ..."; time is
// "failed" or "skipped" for transactions that did not complete.
func readTxLatencies(dir string) ([]float64, error) {
	files, err := filepath.Glob(filepath.Join(dir, "tx.*"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("pgbench wrote no transaction log in %s", dir)
	}
	var lat []float64
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := bytes.Fields(sc.Bytes())
			if len(fields) < 3 {
				continue
			}
			v, err := strconv.ParseFloat(string(fields[2]), 64)
			if err != nil {
				continue
			}
			lat = append(lat, v)
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return nil, err
		}
	}
	return lat, nil
}

// percentile returns the p-quantile (0..1) of values by the nearest-rank
// method; it sorts values in place.
func percentile(values []float64, p float64) float64 {
	if len(values) == 0 {
		return 0
	}
	slices.Sort(values)
	rank := int(p*float64(len(values))+0.999999) - 1
	return values[max(0, min(rank, len(values)-1))]
}

// pgbenchInit creates the pgbench tables at scale in db on the primary.
func pgbenchInit(ctx context.Context, env *Env, scale int) error {
	cmd := exec.CommandContext(ctx, env.pgbench, "-i", "-q", "-s", strconv.Itoa(scale),
		"-h", "127.0.0.1", "-p", strconv.Itoa(env.cluster.Primary.Port), "-U", env.user, env.db)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+env.password, "PGSSLMODE=disable")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgbench -i: %v\n%s", err, out)
	}
	return nil
}
