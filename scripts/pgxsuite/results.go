package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"
)

// testEvent is one line of `go test -json` (cmd/test2json).
type testEvent struct {
	Time    time.Time
	Action  string
	Package string
	Test    string
	Elapsed float64
	Output  string
}

// testResult is one test or subtest. Action is pass, fail or skip; empty
// when the test started but never finished (its package timed out or
// crashed).
type testResult struct {
	Package string
	Name    string
	Action  string
	Output  []string
}

// Key identifies a test across targets.
func (r *testResult) Key() string { return shortPackage(r.Package) + " " + r.Name }

// failed reports a failure or a missing result.
func (r *testResult) failed() bool { return r.Action == "fail" || r.Action == "" }

// targetRun is one target's `go test -json` output.
type targetRun struct {
	Target     string
	Tests      map[string]*testResult // by Key
	Order      []string               // Keys in start order
	PkgFailed  map[string]string      // package -> why (output tail) for package-level failures
	Begin, End time.Time
	Meta       string // how the run was made: the .meta file beside the results, if any
	Counters   string // pgone's route, pin and error counters at the end, if saved
}

// readRun parses a `go test -json` file. Lines that are not JSON (build
// output go test prints itself) are ignored.
func readRun(target, path string) (*targetRun, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	run := &targetRun{Target: target, Tests: map[string]*testResult{}, PkgFailed: map[string]string{}}
	if meta, err := os.ReadFile(strings.TrimSuffix(path, ".json") + ".meta"); err == nil {
		run.Meta = strings.TrimSpace(string(meta))
	}
	if m, err := os.ReadFile(strings.TrimSuffix(path, ".json") + ".metrics"); err == nil {
		run.Counters = counterSummary(string(m))
	}
	pkgOut := map[string][]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var ev testEvent
		if json.Unmarshal(sc.Bytes(), &ev) != nil || ev.Package == "" {
			continue
		}
		if run.Begin.IsZero() || ev.Time.Before(run.Begin) {
			run.Begin = ev.Time
		}
		if ev.Time.After(run.End) {
			run.End = ev.Time
		}
		if ev.Test == "" {
			run.packageEvent(ev, pkgOut)
			continue
		}
		key := shortPackage(ev.Package) + " " + ev.Test
		r := run.Tests[key]
		if r == nil {
			r = &testResult{Package: ev.Package, Name: ev.Test}
			run.Tests[key] = r
			run.Order = append(run.Order, key)
		}
		switch ev.Action {
		case "pass", "fail", "skip":
			r.Action = ev.Action
		case "output":
			r.Output = append(r.Output, ev.Output)
		}
	}
	return run, sc.Err()
}

// packageEvent keeps a package's own output and records why it failed.
func (run *targetRun) packageEvent(ev testEvent, pkgOut map[string][]string) {
	switch ev.Action {
	case "output", "build-output":
		pkgOut[ev.Package] = append(pkgOut[ev.Package], ev.Output)
	case "fail":
		out := pkgOut[ev.Package]
		why := "package failed"
		for _, l := range out {
			if strings.HasPrefix(l, "panic: test timed out") || strings.Contains(l, "[build failed]") ||
				strings.Contains(l, "[setup failed]") || strings.HasPrefix(l, "panic: ") {
				why = strings.TrimSpace(l)
				break
			}
		}
		run.PkgFailed[ev.Package] = why
	}
}

// counts are pass/fail/skip totals; noResult counts tests that never ended.
type counts struct{ pass, fail, skip, noResult int }

// count totals every test (topLevel=false) or top-level tests only.
func (run *targetRun) count(topLevel bool) counts {
	var c counts
	for _, k := range run.Order {
		r := run.Tests[k]
		if topLevel && strings.Contains(r.Name, "/") {
			continue
		}
		switch r.Action {
		case "pass":
			c.pass++
		case "fail":
			c.fail++
		case "skip":
			c.skip++
		default:
			c.noResult++
		}
	}
	return c
}

// leafFailures are the failed tests none of whose subtests failed: the
// tests that actually report the failure.
func (run *targetRun) leafFailures() []*testResult {
	var out []*testResult
	for _, k := range run.Order {
		r := run.Tests[k]
		if !r.failed() || run.hasFailedChild(r) {
			continue
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key() < out[j].Key() })
	return out
}

func (run *targetRun) hasFailedChild(r *testResult) bool {
	prefix := r.Key() + "/"
	for k, c := range run.Tests {
		if strings.HasPrefix(k, prefix) && c.failed() {
			return true
		}
	}
	return false
}

func shortPackage(p string) string {
	const root = "github.com/jackc/pgx/v5"
	if p == root {
		return "pgx"
	}
	return strings.TrimPrefix(p, root+"/")
}

var (
	sqlstateRE   = regexp.MustCompile(`SQLSTATE ([0-9A-Z]{5})`)
	testLogRE    = regexp.MustCompile(`^\s+\w+\.go:\d+: (.*)`)
	spaceRE      = regexp.MustCompile(`\s+`)
	errorBlockRE = regexp.MustCompile(`^\s+(Error Trace|Test|Messages):`)
)

// cause guesses a failure's cause, naming the item of issue 10 or the
// transaction-pooler limitation it most likely belongs to. Evidence in the
// output wins over a test's known cause. It is a hint for a reader, not a
// verdict.
func cause(r *testResult) string {
	out := strings.Join(r.Output, "")
	has := func(s ...string) bool {
		for _, x := range s {
			if strings.Contains(out, x) {
				return true
			}
		}
		return false
	}
	switch {
	case r.Action == "" || has("panic: test timed out"):
		return "hang: no result (package timed out)"
	case knownCause(r.Name) == splitTail: // whatever error the wrong server gave
		return splitTail
	case has("unnamed prepared statement does not exist", `prepared statement "" `, `portal "" `, "bind message supplies"):
		return "unnamed statement/portal (#1)"
	}
	if c := knownCause(r.Name); c != "" {
		return c
	}
	switch {
	case has("42P05"):
		return "42P05 statement already exists (#2, #4)"
	case has("26000"):
		return "26000 statement does not exist (#5 DEALLOCATE, cache)"
	case strings.HasSuffix(r.Name, "/describe_exec"):
		// describe_exec sends Parse+Describe of the unnamed statement, then
		// Bind+Execute of it in a second request.
		return "describe_exec: ran another statement than described? (#1)"
	case has("context deadline exceeded", "i/o timeout", "timeout: context"):
		return "timeout (split deadlock #3?)"
	}
	if m := sqlstateRE.FindStringSubmatch(out); m != nil {
		return "SQLSTATE " + m[1]
	}
	return "other"
}

// firstError is the first assertion message or t.Error line of a test's
// output, flattened to one short line.
func firstError(r *testResult) string {
	var parts []string
	inError := false
	for _, l := range r.Output {
		switch {
		case strings.Contains(l, "Error:") && !inError && len(parts) == 0:
			inError = true
			parts = append(parts, l[strings.Index(l, "Error:")+len("Error:"):])
		case inError && errorBlockRE.MatchString(l):
			inError = false
		case inError:
			parts = append(parts, l)
		}
	}
	if len(parts) == 0 {
		for _, l := range r.Output {
			if m := testLogRE.FindStringSubmatch(l); m != nil {
				parts = append(parts, m[1])
				break
			}
			if strings.HasPrefix(l, "panic:") {
				parts = append(parts, l)
				break
			}
		}
	}
	s := strings.TrimSpace(spaceRE.ReplaceAllString(strings.Join(parts, " "), " "))
	if len(s) > 180 {
		s = s[:177] + "..."
	}
	return strings.ReplaceAll(s, "|", `\|`)
}

func (c counts) String() string {
	s := fmt.Sprintf("%d passed, %d failed, %d skipped", c.pass, c.fail, c.skip)
	if c.noResult > 0 {
		s += fmt.Sprintf(", %d without result", c.noResult)
	}
	return s
}

// knownCauses map pgx tests to their cause: those issue 10 names by its
// item, and those that need behaviour no transaction pooler offers. A test
// name matches by prefix.
var knownCauses = []struct{ prefix, cause string }{
	{"TestConnSendBatchBeginTx", "42P05 after an error mid-pipeline (#2) [issue]"},
	{"TestTxSendBatch", "42P05 after an error mid-pipeline (#2) [issue]"},
	{"TestPipelineFlushWithError", splitTail},
	{"TestConnExecParamsMaxNumberOfParams", splitTail},
	{"TestConnLargeResponseWhileWritingDoesNotDeadlock", splitTail},
	{"TestConnExecBatchHuge", splitTail},
	{"TestPrepareIdempotency", "second Parse of a name accepted, no 42P05 (#4) [issue]"},
	{"TestDeallocateMissingPreparedStatementStillClearsFromPreparedStatementMap", "SQL DEALLOCATE name (#5) [issue]"},
	{"TestConnReleaseClosesConnIn", "same backend PID after release (#8) [issue]"},
	{"TestConnConcurrency", "cross-connection read-your-writes (#9) [issue]"},
	// pg_terminate_backend(pid) of the test's own backend: in transaction
	// mode the PID is one pooled server's, and pgone survives its death.
	{"TestConnCheckConn", pidLimit},
	{"TestConnPing", pidLimit},
	{"TestFatalRxError", pidLimit},
	{"TestFatalTxError", pidLimit},
	{"TestBeginTxFatalErrorKillsConn", pidLimit},
	{"TestConnDestroyedWhenBeginFailsFatally", pidLimit},
	{"TestPoolAcquireChecksIdleConns", pidLimit},
	{"TestCheckIdleConn", pidLimit},
	// Counts rows of pg_prepared_statements, which shows pgone's names.
	{"TestConnMultiplePrepareAndDeallocate", "pg_prepared_statements [pooler limitation]"},
	// statement_timeout must fire while the server waits between Parse and
	// Describe; a pooler sends the request only once it has its Sync.
	{"TestPrepareHandlesTimeoutBetweenParseAndDescribe", syncLimit},
	{"TestPrepareWithDigestedNameHandlesTimeoutBetweenParseAndDescribe", syncLimit},
	{"TestSendBatchHandlesTimeoutBetweenParseAndDescribe", syncLimit},
}

const (
	// splitTail: the split sends a request without SQL text (a lone Sync,
	// Execute+Sync, the tail of a request over 1 MiB) to the primary while
	// its statement ran on a replica: a hang, or a lost unnamed statement.
	splitTail = "split: request without SQL sent to another server than its statement (#3) [issue]"
	pidLimit  = "backend PID / FATAL on server death [pooler limitation]"
	syncLimit = "request sent whole at Sync: no statement_timeout between Parse and Describe [pooler limitation]"
)

func knownCause(name string) string {
	for _, k := range knownCauses {
		if strings.HasPrefix(name, k.prefix) {
			return k.cause
		}
	}
	return ""
}
