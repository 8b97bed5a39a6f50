package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// targetTitles describe each target in the summary.
var targetTitles = map[string]string{
	targetDirect:  "PostgreSQL directly",
	targetSession: "pgone, session mode",
	targetTx:      "pgone, transaction mode",
	targetSplit:   "pgone, transaction mode, primary + replica (read/write split)",
}

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ", ") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func cmdSummarize(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("summarize", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "Markdown file to write (default: stdout)")
	var notes stringList
	fs.Var(&notes, "note", "a line for the setup section (repeatable)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	runs, code := readRuns(fs, "TARGET=FILE", readRun, stderr)
	if code != 0 {
		return code
	}
	var b strings.Builder
	writeSummary(&b, runs, notes)
	return writeOutput(fs.Name(), *out, b.String(), stdout, stderr)
}

// readRuns reads each TARGET=PATH argument of fs with read. On an error it
// prints it and returns a non-zero exit code.
func readRuns[R any](fs *flag.FlagSet, want string, read func(target, path string) (R, error), stderr io.Writer) ([]R, int) {
	var runs []R
	for _, a := range fs.Args() {
		target, path, ok := strings.Cut(a, "=")
		if !ok {
			fmt.Fprintf(stderr, "pgxsuite %s: want %s, got %q\n", fs.Name(), want, a)
			return nil, 2
		}
		run, err := read(target, path)
		if err != nil {
			fmt.Fprintf(stderr, "pgxsuite %s: %v\n", fs.Name(), err)
			return nil, 1
		}
		runs = append(runs, run)
	}
	return runs, 0
}

// writeOutput writes text to the file out, or to stdout if out is "".
func writeOutput(cmd, out, text string, stdout, stderr io.Writer) int {
	if out == "" {
		fmt.Fprint(stdout, text)
		return 0
	}
	if err := os.WriteFile(out, []byte(text), 0o644); err != nil {
		fmt.Fprintf(stderr, "pgxsuite %s: %v\n", cmd, err)
		return 1
	}
	fmt.Fprintln(stdout, "wrote", out)
	return 0
}

// writeSummary writes the counts table, the baseline failures, and per
// pgone target the tests that fail through pgone but not directly.
func writeSummary(w io.Writer, runs []*targetRun, notes []string) {
	fmt.Fprintf(w, "# pgx v5.12.0's test suite through pgone (%s)\n\n", time.Now().UTC().Format("2006-01-02"))
	fmt.Fprintln(w, "Written by `scripts/pgx-suite.sh` (`make pgx-suite`); rerun one target with `scripts/pgx-suite.sh tx`.")
	fmt.Fprintln(w, "A test counts as failing when it or one of its subtests fails; the lists name the failing leaves (a failed test none of whose subtests failed).")
	fmt.Fprintln(w)
	for _, n := range notes {
		fmt.Fprintf(w, "- %s\n", n)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| target | | top-level tests | all tests incl. subtests | failing leaves | run |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	var direct *targetRun
	for _, r := range runs {
		if r.Target == targetDirect {
			direct = r
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %d | %s at %s |\n", r.Target, targetTitles[r.Target],
			r.count(true), r.count(false), len(r.leafFailures()),
			r.End.Sub(r.Begin).Round(time.Second), r.Begin.UTC().Format("2006-01-02 15:04Z"))
	}
	fmt.Fprintln(w)
	for _, r := range runs {
		writePackageFailures(w, r)
	}
	fmt.Fprintln(w, "How each target ran:")
	fmt.Fprintln(w)
	for _, r := range runs {
		fmt.Fprintf(w, "- %s: %s\n", r.Target, r.Meta)
		if r.Counters != "" {
			fmt.Fprintf(w, "  - pgone counters at the end: %s\n", r.Counters)
		}
	}
	fmt.Fprintln(w)
	if direct != nil {
		writeList(w, "Failing directly (PostgreSQL, no pgone)", direct.leafFailures())
	}
	for _, r := range runs {
		if r.Target == targetDirect {
			continue
		}
		var only, both []*testResult
		for _, f := range r.leafFailures() {
			if direct != nil && failsIn(direct, f) {
				both = append(both, f)
			} else {
				only = append(only, f)
			}
		}
		writeTable(w, fmt.Sprintf("%s (%s): failing through pgone, not directly", r.Target, targetTitles[r.Target]), only)
		if len(both) > 0 {
			writeList(w, fmt.Sprintf("%s: failing through pgone and directly", r.Target), both)
		}
	}
}

// failsIn reports whether f, or the test it belongs to, failed in run.
func failsIn(run *targetRun, f *testResult) bool {
	k := f.Key()
	for {
		if r, ok := run.Tests[k]; ok && r.failed() {
			return true
		}
		i := strings.LastIndex(k, "/")
		if i < 0 {
			return false
		}
		k = k[:i]
	}
}

func writePackageFailures(w io.Writer, r *targetRun) {
	if len(r.PkgFailed) == 0 {
		return
	}
	var pkgs []string
	for p := range r.PkgFailed {
		pkgs = append(pkgs, p)
	}
	sort.Strings(pkgs)
	var whys []string
	for _, p := range pkgs {
		if why := r.PkgFailed[p]; why != "package failed" { // else its failing tests say why
			whys = append(whys, fmt.Sprintf("`%s`: %s", shortPackage(p), why))
		}
	}
	if len(whys) > 0 {
		fmt.Fprintf(w, "Package failures in %s: %s.\n\n", r.Target, strings.Join(whys, "; "))
	}
}

func writeList(w io.Writer, title string, tests []*testResult) {
	fmt.Fprintf(w, "## %s (%d)\n\n", title, len(tests))
	if len(tests) == 0 {
		fmt.Fprintln(w, "None.")
	}
	for _, t := range tests {
		fmt.Fprintf(w, "- `%s` %s\n", t.Key(), firstError(t))
	}
	fmt.Fprintln(w)
}

// writeTable lists failures grouped by their likely cause.
func writeTable(w io.Writer, title string, tests []*testResult) {
	fmt.Fprintf(w, "## %s (%d)\n\n", title, len(tests))
	if len(tests) == 0 {
		fmt.Fprintln(w, "None.")
		fmt.Fprintln(w)
		return
	}
	sort.SliceStable(tests, func(i, j int) bool { return causeOrder(cause(tests[i])) < causeOrder(cause(tests[j])) })
	perCause := map[string]int{}
	var causes []string
	for _, t := range tests {
		c := cause(t)
		if perCause[c] == 0 {
			causes = append(causes, c)
		}
		perCause[c]++
	}
	for _, c := range causes {
		fmt.Fprintf(w, "- %d × %s\n", perCause[c], c)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| likely cause | test | first error |")
	fmt.Fprintln(w, "|---|---|---|")
	for _, t := range tests {
		fmt.Fprintf(w, "| %s | `%s` | %s |\n", cause(t), t.Key(), firstError(t))
	}
	fmt.Fprintln(w)
}

// causeOrder sorts causes: pgone bugs first (by their issue item), then
// unexplained failures, then transaction-pooler limitations.
func causeOrder(c string) string {
	switch {
	case strings.Contains(c, "[pooler limitation]"):
		return "3" + c
	case strings.Contains(c, "(#"):
		i := strings.Index(c, "(#")
		return fmt.Sprintf("1%4s", strings.TrimLeft(strings.SplitN(c[i+2:], ")", 2)[0], "#")) + c
	}
	return "2" + c
}
