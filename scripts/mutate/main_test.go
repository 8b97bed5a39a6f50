package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseList(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mutations.txt")
	list := `# comment

=== first
file: a/b.go
pkg: ./a/ ./c/
run: TestA|TestB
--- old
	if x {
		y()
+++ new
	if !x {
		y()

=== second: deletes a line
file: d.go
pkg: ./
run: TestD
--- old
	z()
+++ new

`
	if err := os.WriteFile(path, []byte(list), 0o644); err != nil {
		t.Fatal(err)
	}
	ms, err := parseList(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []mutant{
		{name: "first", file: "a/b.go", pkg: "./a/ ./c/", run: "TestA|TestB", old: "\tif x {\n\t\ty()", new: "\tif !x {\n\t\ty()", line: 3},
		{name: "second: deletes a line", file: "d.go", pkg: "./", run: "TestD", old: "\tz()", new: "", line: 14},
	}
	if len(ms) != len(want) {
		t.Fatalf("got %d mutants, want %d: %+v", len(ms), len(want), ms)
	}
	for i := range want {
		if ms[i] != want[i] {
			t.Errorf("mutant %d:\n got %+v\nwant %+v", i, ms[i], want[i])
		}
	}
}

func TestParseListErrors(t *testing.T) {
	for name, list := range map[string]string{
		"no run":          "=== m\nfile: f.go\npkg: ./\n--- old\nx\n+++ new\ny\n",
		"changes nothing": "=== m\nfile: f.go\npkg: ./\nrun: T\n--- old\nx\n+++ new\nx\n",
		"text before ===": "file: f.go\n",
		"unknown key":     "=== m\nfiles: f.go\n",
	} {
		path := filepath.Join(t.TempDir(), "list")
		if err := os.WriteFile(path, []byte(list), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := parseList(path); err == nil {
			t.Errorf("%s: parsed without error", name)
		}
	}
}

// TestMutationsApply checks the committed list against the tree: every
// mutant parses and its original snippet occurs exactly once in its file,
// so a change to the code that moves a snippet fails here, in go test,
// rather than as "stale" in the next make mutate.
func TestMutationsApply(t *testing.T) {
	root := filepath.Join("..", "..")
	ms, err := parseList(filepath.Join(root, "scripts", "mutations.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		src, err := os.ReadFile(filepath.Join(root, m.file))
		if err != nil {
			t.Errorf("%s (mutations.txt:%d): %v", m.name, m.line, err)
			continue
		}
		if n := bytes.Count(src, []byte(m.old)); n != 1 {
			t.Errorf("%s (mutations.txt:%d): the original snippet occurs %d times in %s", m.name, m.line, n, m.file)
		}
		for _, p := range strings.Fields(m.pkg) {
			if _, err := os.Stat(filepath.Join(root, p)); err != nil {
				t.Errorf("%s (mutations.txt:%d): package %s: %v", m.name, m.line, p, err)
			}
		}
	}
}
