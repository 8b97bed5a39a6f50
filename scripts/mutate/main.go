// Command mutate is pgone's mutation check (`make mutate`): it plants each
// fault listed in scripts/mutations.txt, one at a time, in a temporary copy
// of the source tree, runs the focused tests that should catch it, and
// reports each mutant as caught or missed, with a score.
//
// The working tree is never modified: the copy is made once, each mutant is
// written into it and its original restored before the next one, and the
// copy is removed at the end (also on Ctrl-C). Mutants run one after
// another without -race, to keep CPU use small.
//
// Usage: go run ./scripts/mutate [-list scripts/mutations.txt] [-only regexp] [-v]
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// mutant is one planted fault: in file, old (which must occur exactly once)
// becomes new; pkg and run select the tests that must fail.
type mutant struct {
	name, file, pkg, run string
	old, new             string
	line                 int // where the mutant starts in the list
}

func main() {
	list := flag.String("list", "scripts/mutations.txt", "the mutation list")
	only := flag.String("only", "", "run only mutants whose name matches this regular expression")
	timeout := flag.Duration("timeout", 3*time.Minute, "go test -timeout for each mutant")
	verbose := flag.Bool("v", false, "print the test output of every mutant")
	flag.Parse()

	mutants, err := parseList(*list)
	if err != nil {
		fatal(err)
	}
	if *only != "" {
		re, err := regexp.Compile(*only)
		if err != nil {
			fatal(err)
		}
		var keep []mutant
		for _, m := range mutants {
			if re.MatchString(m.name) {
				keep = append(keep, m)
			}
		}
		mutants = keep
	}
	if len(mutants) == 0 {
		fatal(errors.New("no mutants to run"))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, mutants, *timeout, *verbose))
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "mutate:", err)
	os.Exit(2)
}

// run checks every mutant in a copy of the tree and prints the report. It
// returns the exit code: 0 if every mutant was caught.
func run(ctx context.Context, mutants []mutant, timeout time.Duration, verbose bool) int {
	dir, err := os.MkdirTemp("", "pgone-mutate-")
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := copyTree(".", dir); err != nil {
		os.RemoveAll(dir)
		fatal(fmt.Errorf("copying the tree: %w", err))
	}
	var caught, missed, broken []string
	for i, m := range mutants {
		if ctx.Err() != nil {
			break
		}
		fmt.Printf("[%d/%d] %s ... ", i+1, len(mutants), m.name)
		start := time.Now()
		outcome, out := check(ctx, dir, m, timeout)
		fmt.Printf("%s (%s)\n", outcome, time.Since(start).Round(time.Second))
		if verbose || strings.HasPrefix(outcome, "invalid") {
			fmt.Println(indent(out))
		}
		switch outcome {
		case "caught":
			caught = append(caught, m.name)
		case "MISSED":
			missed = append(missed, fmt.Sprintf("%s (%s:%d, %s -run '%s')", m.name, m.file, m.line, m.pkg, m.run))
		default:
			broken = append(broken, fmt.Sprintf("%s (%s:%d): %s", m.name, m.file, m.line, outcome))
		}
	}
	valid := len(caught) + len(missed)
	fmt.Printf("\nmutation score: %d/%d caught", len(caught), valid)
	if valid > 0 {
		fmt.Printf(" (%.0f%%)", 100*float64(len(caught))/float64(valid))
	}
	fmt.Println()
	for _, s := range missed {
		fmt.Println("  missed:", s)
	}
	for _, s := range broken {
		fmt.Println("  not run:", s)
	}
	if len(missed) > 0 || len(broken) > 0 {
		return 1
	}
	return 0
}

// check plants m in the copy at dir, runs its tests and restores the file.
// The outcome is "caught", "MISSED", or why the mutant could not be run.
func check(ctx context.Context, dir string, m mutant, timeout time.Duration) (string, string) {
	path := filepath.Join(dir, m.file)
	orig, err := os.ReadFile(path)
	if err != nil {
		return "invalid: " + err.Error(), ""
	}
	if n := bytes.Count(orig, []byte(m.old)); n != 1 {
		return fmt.Sprintf("stale: the original snippet occurs %d times in %s", n, m.file), ""
	}
	mutated := bytes.Replace(orig, []byte(m.old), []byte(m.new), 1)
	if err := os.WriteFile(path, mutated, 0o644); err != nil {
		return "invalid: " + err.Error(), ""
	}
	defer os.WriteFile(path, orig, 0o644)

	args := append([]string{"test", "-count=1", "-timeout", timeout.String(), "-run", m.run}, strings.Fields(m.pkg)...)
	cmd := exec.CommandContext(ctx, goBinary(), args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	text := out.String()
	switch {
	case err == nil && strings.Contains(text, "no tests to run"):
		return "invalid: no test matches -run " + m.run, text
	case err == nil:
		return "MISSED", text
	case strings.Contains(text, "[build failed]") || strings.Contains(text, "[setup failed]"):
		return "invalid: the mutant does not build", text
	default:
		return "caught", text
	}
}

func goBinary() string {
	if g := os.Getenv("GO"); g != "" {
		return g
	}
	return "go"
}

// parseList reads the mutation list. Each mutant is a block:
//
//	=== name
//	file: proxy/txrelay.go
//	pkg: ./proxy/
//	run: TestA|TestB
//	--- old
//	<lines of the original snippet>
//	+++ new
//	<lines of its replacement>
//
// Lines starting with # outside a snippet are comments; trailing blank
// lines of a snippet are dropped. pkg may name several packages.
func parseList(path string) ([]mutant, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var (
		out  []mutant
		cur  *mutant
		part string // "", "old" or "new"
		buf  []string
	)
	flush := func() {
		if cur == nil {
			return
		}
		for len(buf) > 0 && strings.TrimSpace(buf[len(buf)-1]) == "" {
			buf = buf[:len(buf)-1] // blank lines between mutants
		}
		switch part {
		case "old":
			cur.old = strings.Join(buf, "\n")
		case "new":
			cur.new = strings.Join(buf, "\n")
		}
		buf, part = nil, ""
	}
	finish := func() error {
		flush()
		if cur == nil {
			return nil
		}
		if cur.file == "" || cur.pkg == "" || cur.run == "" || cur.old == "" {
			return fmt.Errorf("%s:%d: mutant %q needs file, pkg, run and an old snippet", path, cur.line, cur.name)
		}
		if cur.old == cur.new {
			return fmt.Errorf("%s:%d: mutant %q changes nothing", path, cur.line, cur.name)
		}
		out = append(out, *cur)
		cur = nil
		return nil
	}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "=== "):
			if err := finish(); err != nil {
				return nil, err
			}
			cur = &mutant{name: strings.TrimSpace(line[4:]), line: n}
		case cur == nil && (strings.HasPrefix(line, "#") || strings.TrimSpace(line) == ""):
		case cur == nil:
			return nil, fmt.Errorf("%s:%d: expected === before %q", path, n, line)
		case line == "--- old" || line == "+++ new":
			flush()
			part = line[4:]
		case part != "":
			buf = append(buf, line)
		case strings.HasPrefix(line, "file: "):
			cur.file = strings.TrimSpace(line[6:])
		case strings.HasPrefix(line, "pkg: "):
			cur.pkg = strings.TrimSpace(line[5:])
		case strings.HasPrefix(line, "run: "):
			cur.run = strings.TrimSpace(line[5:])
		case strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "":
		default:
			return nil, fmt.Errorf("%s:%d: unexpected %q", path, n, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if err := finish(); err != nil {
		return nil, err
	}
	return out, nil
}

// copyTree copies the Go module at src to dst, leaving out .git, bin and
// bench results (not needed to test).
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			switch rel {
			case ".git", "bin", filepath.Join("bench", "results"), filepath.Join("bench", "work"):
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		return copyFile(path, filepath.Join(dst, rel))
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if len(s) > 4000 {
		s = "...\n" + s[len(s)-4000:]
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}
