package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// regressLineRE matches one test's line in pg_regress's (PostgreSQL 15)
// output: "test name ... ok 12 ms", "     name ... FAILED 40 ms",
// "     name ... failed (ignored) 3 ms".
var regressLineRE = regexp.MustCompile(`^(?:test | {5})(\S+)\s+\.\.\. (ok|FAILED|failed \(ignored\))`)

// diffHeaderRE matches the line regression.diffs starts each test's diff
// with; the last path is results/NAME.out.
var diffHeaderRE = regexp.MustCompile(`^diff .* \S*/results/(\S+)\.out$`)

// regressRun is one target's pg_regress run.
type regressRun struct {
	Target string
	Status map[string]string // test -> ok, FAILED, failed (ignored)
	Order  []string          // tests in schedule order
	Diffs  map[string][]string
	Tail   string // pg_regress's closing lines ("N of M tests failed.")
	Meta   string
}

// failed reports a test that failed or never ran (missing from the output).
func (r *regressRun) failed(test string) bool { return r.Status[test] != "ok" }

// readRegressRun reads DIR.out (pg_regress's stdout), DIR/regression.diffs
// and DIR.meta.
func readRegressRun(target, dir string) (*regressRun, error) {
	r := &regressRun{Target: target, Status: map[string]string{}, Diffs: map[string][]string{}}
	out, err := os.ReadFile(dir + ".out")
	if err != nil {
		return nil, err
	}
	var tail []string
	for _, line := range strings.Split(string(out), "\n") {
		if m := regressLineRE.FindStringSubmatch(line); m != nil {
			if _, seen := r.Status[m[1]]; !seen {
				r.Order = append(r.Order, m[1])
			}
			r.Status[m[1]] = m[2]
			continue
		}
		if strings.Contains(line, "tests passed") || strings.Contains(line, "tests failed") ||
			strings.Contains(line, "failed (ignored)") && !strings.HasPrefix(line, " ") {
			tail = append(tail, strings.Trim(line, " ="))
		}
	}
	r.Tail = strings.Join(tail, " ")
	if meta, err := os.ReadFile(dir + ".meta"); err == nil {
		r.Meta = strings.TrimSpace(string(meta))
	}
	f, err := os.Open(filepath.Join(dir, "regression.diffs"))
	if err != nil {
		return r, nil // no diffs file: nothing failed, or pg_regress did not get that far
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	current := ""
	for sc.Scan() {
		line := sc.Text()
		if m := diffHeaderRE.FindStringSubmatch(line); m != nil {
			current = m[1]
			continue
		}
		if current != "" {
			r.Diffs[current] = append(r.Diffs[current], shortDiffHeader(line))
		}
	}
	return r, sc.Err()
}

// diffFileRE matches a unified diff's file line: path, tab, timestamp.
var diffFileRE = regexp.MustCompile(`^(---|\+\+\+) (\S+)\t.*$`)

// shortDiffHeader keeps the last two parts of a diff's file line
// ("--- expected/guc.out"): which expected file was compared matters (a
// test may have alternatives, guc_1.out), the local paths and times do not.
func shortDiffHeader(line string) string {
	m := diffFileRE.FindStringSubmatch(line)
	if m == nil {
		return line
	}
	return m[1] + " " + filepath.Join(filepath.Base(filepath.Dir(m[2])), filepath.Base(m[2]))
}

// reconnectRE matches a psql reconnect (\c, \connect) in a test's SQL.
var reconnectRE = regexp.MustCompile(`(?m)^\\c(onnect)?(\s|$)`)

// regressCause guesses why a test fails through pgone and not directly,
// from its diff and its SQL file; a guess to check by reading the diff,
// which the summary prints after it.
func regressCause(diff []string, sql string) string {
	text := strings.Join(diff, "\n")
	switch {
	case strings.Contains(text, "pg_backend_pid") || strings.Contains(text, "pg_stat_activity"):
		return "backend PID: the test looks at its own backend"
	case strings.Contains(text, "reserved prefix") || strings.Contains(text, "LOAD "):
		return "backend reuse: a library an earlier client loaded stays loaded (DISCARD ALL does not unload it)"
	case regexp.MustCompile(`(?i)datestyle|timezone|intervalstyle`).MatchString(text):
		return "startup parameters: check that RESET returns to the startup values"
	case reconnectRE.MatchString(sql):
		return "backend reuse: the test reconnects (\\c) and expects a new backend; pgone hands back a pooled one"
	}
	return "not categorised: read the diff"
}

func cmdRegressSummary(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("regress-summary", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "Markdown file to write (default: stdout)")
	diffLines := fs.Int("diff-lines", 30, "lines of each pgone-only failure's diff to show")
	sqlDir := fs.String("sql", "", "the tests' sql/ directory (for the cause guesses)")
	var notes stringList
	fs.Var(&notes, "note", "a line for the setup section (repeatable)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	runs, code := readRuns(fs, "TARGET=DIR", readRegressRun, stderr)
	if code != 0 {
		return code
	}
	var b strings.Builder
	writeRegressSummary(&b, runs, notes, *diffLines, *sqlDir)
	return writeOutput(fs.Name(), *out, b.String(), stdout, stderr)
}

func writeRegressSummary(b *strings.Builder, runs []*regressRun, notes []string, diffLines int, sqlDir string) {
	fmt.Fprintf(b, "# PostgreSQL regression suite through pgone\n\nWritten by scripts/pg-regress.sh (`make pg-regress`).\n\n")
	for _, n := range notes {
		fmt.Fprintf(b, "- %s\n", n)
	}
	var direct *regressRun
	order := []string{}
	seen := map[string]bool{}
	for _, r := range runs {
		if r.Target == targetDirect {
			direct = r
		}
		for _, t := range r.Order {
			if !seen[t] {
				seen[t] = true
				order = append(order, t)
			}
		}
	}
	fmt.Fprintf(b, "\n## Counts\n\n| target | passed | failed | pg_regress says | run |\n|---|---:|---:|---|---|\n")
	for _, r := range runs {
		passed, failed := 0, 0
		for _, t := range order {
			if r.failed(t) {
				failed++
			} else {
				passed++
			}
		}
		fmt.Fprintf(b, "| %s | %d | %d | %s | %s |\n", targetTitles[r.Target], passed, failed, r.Tail, r.Meta)
	}
	if direct != nil {
		var base []string
		for _, t := range order {
			if direct.failed(t) {
				base = append(base, t)
			}
		}
		fmt.Fprintf(b, "\nFailing directly too (not pgone's doing): %s\n", listOrNone(base))
	}
	for _, r := range runs {
		if r == direct {
			continue
		}
		var only []string
		for _, t := range order {
			if r.failed(t) && (direct == nil || !direct.failed(t)) {
				only = append(only, t)
			}
		}
		fmt.Fprintf(b, "\n## %s: failing only through pgone (%d)\n\n", targetTitles[r.Target], len(only))
		if len(only) == 0 {
			continue
		}
		fmt.Fprintf(b, "| test | status | guessed cause |\n|---|---|---|\n")
		for _, t := range only {
			sql, _ := os.ReadFile(filepath.Join(sqlDir, t+".sql")) // no file: no reconnect guess
			fmt.Fprintf(b, "| %s | %s | %s |\n", t, statusOrMissing(r.Status[t]), regressCause(r.Diffs[t], string(sql)))
		}
		for _, t := range only {
			d := r.Diffs[t]
			fmt.Fprintf(b, "\n### %s\n\n```diff\n", t)
			if len(d) > diffLines {
				fmt.Fprintf(b, "%s\n... (%d more lines)\n", strings.Join(d[:diffLines], "\n"), len(d)-diffLines)
			} else {
				fmt.Fprintf(b, "%s\n", strings.Join(d, "\n"))
			}
			fmt.Fprintf(b, "```\n")
		}
	}
	fmt.Fprintf(b, "\n## Every test\n\n| test |")
	for _, r := range runs {
		fmt.Fprintf(b, " %s |", r.Target)
	}
	fmt.Fprintf(b, "\n|---|%s\n", strings.Repeat("---|", len(runs)))
	for _, t := range order {
		fmt.Fprintf(b, "| %s |", t)
		for _, r := range runs {
			fmt.Fprintf(b, " %s |", statusOrMissing(r.Status[t]))
		}
		fmt.Fprintln(b)
	}
}

func statusOrMissing(s string) string {
	if s == "" {
		return "not run"
	}
	return s
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	sort.Strings(l)
	return strings.Join(l, ", ")
}
