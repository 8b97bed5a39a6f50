package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pgone/pgone/bench/proc"
	"github.com/pgone/pgone/internal/pgtest"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// options are the command-line flags.
type options struct {
	duration, warmup, quiet, faultEvery, outage time.Duration

	writers, readers int
	think            time.Duration
	poolSize         int
	maxRSSGrowth     int64 // bytes
	goroutineSlack   int64
	out, pgoneBin    string
	keep             bool
	plant            bool
	faults           []fault
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	var rssMiB int64
	var faultList string
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&o.duration, "duration", 10*time.Minute, "how long the clients run (make soak: SOAK=1h)")
	fs.DurationVar(&o.warmup, "warmup", 0, "no faults before this; RSS growth is measured from its end (default duration/8, 15s-60s)")
	fs.DurationVar(&o.quiet, "quiet", 0, "no faults in this last stretch of the run (default as -warmup)")
	fs.DurationVar(&o.faultEvery, "fault-every", 15*time.Second, "time between faults")
	fs.StringVar(&faultList, "faults", defaultFaults, "faults in rotation: terminate, restart, freeze, reload, kill (kill -9 of pgone's primary backends)")
	fs.DurationVar(&o.outage, "outage", 3*time.Second, "how long the primary stays down and the replica frozen")
	fs.IntVar(&o.writers, "writers", 4, "writing clients")
	fs.IntVar(&o.readers, "readers", 4, "reading clients")
	fs.DurationVar(&o.think, "think", 5*time.Millisecond, "pause between one client's requests (the machine is shared)")
	fs.IntVar(&o.poolSize, "pool-size", 6, "pgone's pool_size; reloads alternate between it and a third of it")
	fs.Int64Var(&rssMiB, "max-rss-growth", 64, "MiB pgone's RSS may grow from the end of warm-up to the end of the load")
	fs.Int64Var(&o.goroutineSlack, "goroutine-slack", 5, "goroutines above the idle baseline still counted as back to baseline")
	fs.StringVar(&o.out, "out", "bench/results", "directory for soak-<date>.md")
	fs.StringVar(&o.pgoneBin, "pgone", "bin/pgone", "pgone binary (make build)")
	fs.BoolVar(&o.keep, "keep", false, "keep the temp dir with pgone's config and log")
	fs.BoolVar(&o.plant, "plant", false, "self-check of the verdict: after the load, plant a lost write, a duplicate, a stray row and a leaked server connection; the run must then fail on each (no report is kept)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	o.maxRSSGrowth = rssMiB << 20
	var err error
	if o.faults, err = selectFaults(faultList); err != nil {
		return o, err
	}
	if o.warmup == 0 {
		o.warmup = min(max(o.duration/8, 15*time.Second), time.Minute)
	}
	if o.quiet == 0 {
		o.quiet = o.warmup
	}
	switch {
	case o.duration < time.Minute:
		return o, errors.New("-duration must be at least 1m")
	case o.warmup+o.quiet >= o.duration:
		return o, errors.New("-warmup plus -quiet must leave time for faults")
	case o.faultEvery < o.outage+2*time.Second:
		return o, errors.New("-fault-every must exceed -outage by 2s")
	case o.writers < 1 || o.readers < 0 || o.poolSize < 1:
		return o, errors.New("-writers and -pool-size must be at least 1, -readers not negative")
	}
	return o, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "soak:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := &Env{o: o, began: time.Now(), out: stdout}
	defer e.cleanup()
	rep, err := soak(ctx, e)
	if err != nil {
		if ctx.Err() != nil {
			e.logf("interrupted: stopping everything; no report written")
			return 130
		}
		e.logf("failed: %v", err)
		return 1
	}
	e.cleanup()
	rep.RunTime = time.Since(e.began)
	name := "soak-" + rep.Started.UTC().Format("2006-01-02-1504") + ".md"
	if o.plant {
		name = "pgone-soak-planted.md" // not a result to commit
		o.out = os.TempDir()
	}
	path := filepath.Join(o.out, name)
	if err := os.MkdirAll(o.out, 0o755); err == nil {
		err = os.WriteFile(path, []byte(rep.markdown()), 0o644)
	}
	if err != nil {
		e.logf("writing the report: %v", err)
		return 1
	}
	failed := rep.failed()
	for _, inv := range rep.Invariants {
		e.logf("%-4s %s: %s", map[bool]string{true: "ok", false: "FAIL"}[inv.OK], inv.Name, inv.Got)
	}
	e.logf("wrote %s", path)
	if len(failed) > 0 {
		e.logf("FAILED: %s", strings.Join(failed, "; "))
		return 1
	}
	return 0
}

// soak starts everything, runs the load and the faults, and checks the
// invariants. An error means the run itself could not be done.
func soak(ctx context.Context, e *Env) (*report, error) {
	if err := e.start(ctx); err != nil {
		return nil, err
	}
	rep := &report{o: e.o, Started: time.Now(), Postgres: postgresVersion(ctx)}
	rep.Pgone, _ = proc.Describe(ctx, e.pgBin)
	base, err := e.idleGoroutines(ctx)
	if err != nil {
		return nil, err
	}
	rep.BaselineGoroutines = base
	e.logf("idle baseline: %d goroutines; running %d writers and %d readers for %s, faults every %s after %s",
		base, e.o.writers, e.o.readers, e.o.duration, e.o.faultEvery, e.o.warmup)

	c := &counters{start: time.Now()}
	ledgers := runLoad(ctx, e, c, rep)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	rep.Counters = c
	e.logf("load done: %d acknowledged writes, %d write errors, %d reads, %d read errors", c.acks.Load(), c.writeErrs.Load(), c.reads.Load(), c.readErrs.Load())
	if s, err := e.scrape(ctx); err == nil {
		rep.EndOfLoad = &s
	}
	rep.Alive = !e.pgone.Exited()
	rep.ServingErr = proc.Ping(ctx, e.clientDSN())
	if e.o.plant {
		release, err := plantFaults(ctx, e, ledgers)
		if err != nil {
			return nil, err
		}
		defer release()
	}

	// Once the clients are gone: pgone's list against the servers', then
	// nothing at all after server_idle_timeout.
	rep.Settled, rep.SettledErr = e.settleLeaks(ctx, 30*time.Second, false)
	rep.Emptied, rep.EmptiedErr = e.settleLeaks(ctx, serverIdleTimeout+30*time.Second, true)
	rep.FinalGoroutines, rep.GoroutinesErr = e.goroutinesBackTo(ctx, base+e.o.goroutineSlack, 30*time.Second)
	if s, err := e.scrape(ctx); err == nil {
		rep.Idle = &s
	}
	rep.Verdict, rep.VerdictErr = verifyLedger(ctx, e, ledgers)
	rep.judge()
	return rep, nil
}

// runLoad runs the clients, the fault schedule and the metrics sampler
// for o.duration and returns the writers' ledgers.
func runLoad(ctx context.Context, e *Env, c *counters, rep *report) []*ledger {
	loadCtx, cancel := context.WithTimeout(ctx, e.o.duration)
	defer cancel()
	loadStart := c.start
	var wg sync.WaitGroup
	var ledgers []*ledger
	for i := 1; i <= e.o.writers; i++ {
		w := &writer{client: client{n: i, dsn: e.clientDSN(), think: e.o.think, c: c}}
		ledgers = append(ledgers, &w.l)
		wg.Add(1)
		go func() { defer wg.Done(); w.run(loadCtx) }()
	}
	for i := 1; i <= e.o.readers; i++ {
		r := &reader{client: client{n: i, dsn: e.clientDSN(), think: e.o.think, c: c}, writers: e.o.writers}
		wg.Add(1)
		go func() { defer wg.Done(); r.run(loadCtx) }()
	}
	wg.Add(2)
	go func() { defer wg.Done(); rep.Faults = runFaults(loadCtx, e, c, loadStart) }()
	go func() { defer wg.Done(); rep.Samples, rep.SampleErrs = sampleMetrics(loadCtx, e, loadStart) }()
	wg.Wait()
	return ledgers
}

// sampleMetrics scrapes pgone's metrics every 5s until ctx ends.
func sampleMetrics(ctx context.Context, e *Env, loadStart time.Time) ([]sample, int) {
	var out []sample
	errs := 0
	for ctx.Err() == nil {
		s, err := e.scrape(ctx)
		if err == nil {
			s.At = time.Since(loadStart)
			out = append(out, s)
		} else if ctx.Err() == nil {
			errs++
		}
		pause(ctx, 5*time.Second)
	}
	return out, errs
}

// idleGoroutines waits for pgone's goroutine count to hold still for a
// second (the replica monitor's first checks are done) and returns it.
func (e *Env) idleGoroutines(ctx context.Context) (int64, error) {
	prev := int64(-1)
	for i := 0; i < 30; i++ {
		s, err := e.scrape(ctx)
		if err != nil {
			return 0, err
		}
		if s.Goroutines == prev {
			return prev, nil
		}
		prev = s.Goroutines
		pause(ctx, time.Second)
	}
	return 0, fmt.Errorf("pgone's goroutine count did not settle in 30s (last %d)", prev)
}

// goroutinesBackTo polls until pgone has at most limit goroutines or
// timeout passes, and returns the last count.
func (e *Env) goroutinesBackTo(ctx context.Context, limit int64, timeout time.Duration) (int64, error) {
	deadline := time.Now().Add(timeout)
	for {
		s, err := e.scrape(ctx)
		if err == nil && s.Goroutines <= limit {
			return s.Goroutines, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return s.Goroutines, err
		}
		pause(ctx, 200*time.Millisecond)
	}
}

func postgresVersion(ctx context.Context) string {
	dir, err := pgtest.BinDir()
	if err != nil {
		return err.Error()
	}
	return proc.FirstLine(ctx, filepath.Join(dir, "postgres"), "--version")
}
