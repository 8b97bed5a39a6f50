package main

import (
	"fmt"
	"runtime"
	"strings"
	"time"
)

// report is one run: what happened and what held.
type report struct {
	o                  options
	Started            time.Time
	RunTime            time.Duration
	Pgone, Postgres    string
	BaselineGoroutines int64

	Counters   *counters
	Faults     []faultRecord
	Samples    []sample
	SampleErrs int
	EndOfLoad  *sample
	Idle       *sample

	Alive      bool
	ServingErr error

	Settled, Emptied              leakState
	SettledErr, EmptiedErr        error
	FinalGoroutines               int64
	GoroutinesErr                 error
	Verdict                       verdict
	VerdictErr                    error
	Invariants                    []invariant
	warmupRSS, peakRSS, rssGrowth int64
}

// invariant is one line of the verdict table.
type invariant struct {
	Name string
	OK   bool
	Got  string
}

func (r *report) check(name string, ok bool, format string, args ...any) {
	r.Invariants = append(r.Invariants, invariant{Name: name, OK: ok, Got: fmt.Sprintf(format, args...)})
}

// judge fills Invariants from what was measured.
func (r *report) judge() {
	v, c := r.Verdict, r.Counters
	if r.VerdictErr != nil {
		r.check("ledger read back from the primary", false, "%v", r.VerdictErr)
	} else {
		r.check("acknowledged writes lost", len(v.Lost) == 0, "%d of %d%s", len(v.Lost), v.Acked, sampleIDs(v.Lost))
		r.check("writes applied twice", len(v.Twice) == 0, "%d%s", len(v.Twice), sampleIDs(v.Twice))
		r.check("writes called rolled back (08006) or never committed, yet present", len(v.RolledBackPresent) == 0,
			"%d of %d%s", len(v.RolledBackPresent), v.RolledBack, sampleIDs(v.RolledBackPresent))
		r.check("rows no writer attempted", v.Unrecorded == 0, "%d", v.Unrecorded)
	}
	c.mu.Lock()
	r.check("own acknowledged write not visible to the writer's next read (read_your_writes)", c.nMiss == 0,
		"%d of %d checks%s", c.nMiss, c.rywChecks.Load(), listOrEmpty(c.rywMiss))
	c.mu.Unlock()
	r.check("load ran", c.acks.Load() > 0 && (r.o.readers == 0 || c.reads.Load() > 0),
		"%d acknowledged writes, %d reads", c.acks.Load(), c.reads.Load())

	recovered, failed := 0, []string{}
	for _, f := range r.Faults {
		if f.Err == nil && f.Recovery >= 0 {
			recovered++
		} else {
			failed = append(failed, fmt.Sprintf("%s at %s: err %v, recovery %s", f.Name, f.At.Round(time.Second), f.Err, f.Recovery))
		}
	}
	r.check("faults injected, each followed by an acknowledged write within 60s", len(r.Faults) > 0 && len(failed) == 0,
		"%d of %d%s", recovered, len(r.Faults), listOrEmpty(failed))
	r.check("pgone alive and serving after the last fault", r.Alive && r.ServingErr == nil, "alive %v, login and SELECT 1: %v", r.Alive, errText(r.ServingErr))

	leaked, phantom, _ := r.Settled.counts()
	r.check("server connections leaked (pg_stat_activity vs SHOW SERVERS, clients gone)", r.SettledErr == nil && leaked == 0 && phantom == 0,
		"%d leaked, %d listed but gone (%s)%s", leaked, phantom, r.Settled, errSuffix(r.SettledErr))
	_, _, pooled := r.Emptied.counts()
	left := 0
	for _, s := range r.Emptied.Servers {
		left += len(s.PgPids)
	}
	r.check(fmt.Sprintf("server connections left once idle past server_idle_timeout (%s)", serverIdleTimeout),
		r.EmptiedErr == nil && left == 0 && pooled == 0 && len(r.Emptied.Servers) == 2,
		"%d backends on the servers, %d in SHOW POOLS%s", left, pooled, errSuffix(r.EmptiedErr))

	r.rss()
	r.check("RSS growth after warm-up", r.warmupRSS > 0 && r.rssGrowth <= r.o.maxRSSGrowth,
		"%s (%s at the end of warm-up, %s at the end of the load, peak %s; limit %s)",
		mib(r.rssGrowth), mib(r.warmupRSS), mib(r.warmupRSS+r.rssGrowth), mib(r.peakRSS), mib(r.o.maxRSSGrowth))
	r.check("goroutines back to the idle baseline", r.GoroutinesErr == nil && r.FinalGoroutines <= r.BaselineGoroutines+r.o.goroutineSlack,
		"%d after the clients left, baseline %d (slack %d)%s", r.FinalGoroutines, r.BaselineGoroutines, r.o.goroutineSlack, errSuffix(r.GoroutinesErr))
}

// rss takes the first sample after warm-up as the base and the end of the
// load as the end.
func (r *report) rss() {
	for _, s := range r.Samples {
		if r.warmupRSS == 0 && s.At >= r.o.warmup {
			r.warmupRSS = s.RSS
		}
		r.peakRSS = max(r.peakRSS, s.RSS)
	}
	end := r.EndOfLoad
	if end == nil && len(r.Samples) > 0 {
		end = &r.Samples[len(r.Samples)-1]
	}
	if end != nil && r.warmupRSS > 0 {
		r.rssGrowth = end.RSS - r.warmupRSS
		r.peakRSS = max(r.peakRSS, end.RSS)
	}
}

func (r *report) failed() []string {
	var out []string
	for _, inv := range r.Invariants {
		if !inv.OK {
			out = append(out, inv.Name+": "+inv.Got)
		}
	}
	return out
}

func (r *report) markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	verdict := "PASS"
	if len(r.failed()) > 0 {
		verdict = "FAIL"
	}
	p("# pgone soak, %s: %s", r.Started.UTC().Format("2006-01-02 15:04 UTC"), verdict)
	p("")
	p("`go run ./bench/soak -duration %s` (make soak), %s in all.", r.o.duration, r.RunTime.Round(time.Second))
	p("")
	p("- pgone: %s; transaction mode, pool_size %d (reloads alternate with %d), read/write split over one streaming replica with consistency read_your_writes, server_idle_timeout %s", r.Pgone, r.o.poolSize, max(1, r.o.poolSize/3), serverIdleTimeout)
	p("- PostgreSQL: %s, primary and streaming replica (internal/pgtest), fsync off, synchronous_commit on", r.Postgres)
	p("- load: %d writers (autocommit INSERT extended and simple protocol, and BEGIN; 2 INSERTs; COMMIT, each acknowledged id read back on the same connection) and %d readers (extended, simple, READ ONLY transaction), %s think time, %s per request at most", r.o.writers, r.o.readers, r.o.think, opTimeout)
	var keys []string
	for _, f := range r.o.faults {
		keys = append(keys, f.key)
	}
	p("- faults: %s in rotation, one every %s after a %s warm-up, none in the last %s; primary down and replica frozen for %s each", strings.Join(keys, ", "), r.o.faultEvery, r.o.warmup, r.o.quiet, r.o.outage)
	p("- machine: %d cores, %s/%s, Go %s; shared with other work, so rates are not benchmarks", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version())
	p("")
	p("## Invariants")
	p("")
	p("| | invariant | measured |")
	p("|---|---|---|")
	for _, inv := range r.Invariants {
		mark := "ok"
		if !inv.OK {
			mark = "**FAIL**"
		}
		p("| %s | %s | %s |", mark, inv.Name, strings.ReplaceAll(inv.Got, "|", "\\|"))
	}
	p("")
	p("## Writes and reads")
	p("")
	c, v := r.Counters, r.Verdict
	p("| | count |")
	p("|---|---|")
	p("| write requests acknowledged | %d |", c.acks.Load())
	p("| write requests failed | %d |", c.writeErrs.Load())
	p("| ids acknowledged / rolled back or never committed / outcome unknown | %d / %d / %d |", v.Acked, v.RolledBack, v.Unknown)
	p("| ids of unknown outcome found committed | %d of %d |", v.UnknownPresent, v.Unknown)
	p("| rows in the ledger on the primary | %d |", v.Rows)
	p("| reads ok / failed | %d / %d |", c.reads.Load(), c.readErrs.Load())
	p("| own-write read-backs | %d |", c.rywChecks.Load())
	p("| availability: requests that succeeded / requests, faults included (the seed's target: 99.95%%) | %s |",
		availability(c.acks.Load()+c.reads.Load(), c.writeErrs.Load()+c.readErrs.Load()))
	p("")
	p("Errors by kind and SQLSTATE (\"connection\": the connection failed without one; \"timeout\": %s passed), with when they happened (since the load began; compare with the faults below):", opTimeout)
	p("")
	counts := c.errorCounts()
	if len(counts) == 0 {
		p("none")
	}
	for _, kv := range counts {
		p("- %s: %s", kv[0], kv[1])
	}
	if len(v.UnknownWhy) > 0 {
		p("")
		p("Writes of unknown outcome (the client was told neither success nor a rollback), up to 50:")
		p("")
		for _, w := range v.UnknownWhy[:min(len(v.UnknownWhy), 50)] {
			p("- %s", w)
		}
	}
	p("")
	p("## Faults")
	p("")
	p("| at | fault | what it did | took | next acknowledged write after |")
	p("|---|---|---|---|---|")
	for _, f := range r.Faults {
		did := f.Did
		if f.Err != nil {
			did = "**failed**: " + f.Err.Error()
		}
		rec := "none within 60s"
		if f.Recovery >= 0 {
			rec = f.Recovery.Round(time.Millisecond).String()
		}
		p("| %s | %s | %s | %s | %s |", f.At.Round(time.Second), f.Name, strings.ReplaceAll(did, "|", "\\|"), f.Took.Round(time.Millisecond), rec)
	}
	p("")
	p("## pgone's memory and goroutines")
	p("")
	p("From its /metrics every 5s (process_resident_memory_bytes, go_goroutines); idle baseline before the clients: %d goroutines.", r.BaselineGoroutines)
	p("")
	p("| at | RSS | goroutines |")
	p("|---|---|---|")
	for _, s := range r.Samples {
		p("| %s | %s | %d |", s.At.Round(time.Second), mib(s.RSS), s.Goroutines)
	}
	if r.EndOfLoad != nil {
		p("| end of load | %s | %d |", mib(r.EndOfLoad.RSS), r.EndOfLoad.Goroutines)
	}
	if r.Idle != nil {
		p("| idle, after server_idle_timeout | %s | %d |", mib(r.Idle.RSS), r.Idle.Goroutines)
	}
	if r.SampleErrs > 0 {
		p("")
		p("%d scrapes failed.", r.SampleErrs)
	}
	return b.String()
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func errText(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

func errSuffix(err error) string {
	if err == nil {
		return ""
	}
	return "; last error: " + err.Error()
}

func sampleIDs(ids []int64) string {
	if len(ids) == 0 {
		return ""
	}
	s := fmt.Sprint(ids[:min(len(ids), 10)])
	return " (ids " + s + ")"
}

func listOrEmpty(items []string) string {
	if len(items) == 0 {
		return ""
	}
	return ": " + strings.Join(items, "; ")
}

// availability is ok over ok+failed as a percentage, for the report.
func availability(ok, failed int64) string {
	if ok+failed == 0 {
		return "no requests"
	}
	return fmt.Sprintf("%.3f%% (%d of %d)", 100*float64(ok)/float64(ok+failed), ok, ok+failed)
}
