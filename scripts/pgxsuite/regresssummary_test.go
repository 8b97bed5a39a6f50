package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// pg_regress 15's output and diffs, trimmed: one plain test, a parallel
// group with a failure, and a test that never ran.
const sampleRegressOut = `============== running regression test queries        ==============
test test_setup                   ... ok          314 ms
parallel group (2 tests, in groups of 4):  guc stats
     guc                          ... FAILED      392 ms
     stats                        ... failed (ignored)      105 ms
======================
 1 of 3 tests failed.
======================
`

const sampleRegressDiffs = `diff -U3 /src/expected/guc.out /out/results/guc.out
--- /src/expected/guc.out	2026-05-11 19:49:58.000000000 +0000
+++ /out/results/guc.out	2026-12-03 10:10:18.326073903 +0000
@@ -551,9 +551,9 @@
+ERROR:  invalid configuration parameter name "plpgsql.extra_foo_warnings"
diff -U3 /src/expected/stats.out /out/results/stats.out
@@ -635,7 +635,7 @@
- t
+ f
`

func TestReadRegressRunSplitsStatusAndDiffsPerTest(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "session")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+".out", []byte(sampleRegressOut), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "regression.diffs"), []byte(sampleRegressDiffs), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := readRegressRun("session", dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.Order, " "); got != "test_setup guc stats" {
		t.Errorf("order %q", got)
	}
	for test, want := range map[string]string{"test_setup": "ok", "guc": "FAILED", "stats": "failed (ignored)"} {
		if r.Status[test] != want {
			t.Errorf("%s: status %q, want %q", test, r.Status[test], want)
		}
	}
	if r.failed("test_setup") || !r.failed("guc") || !r.failed("never_ran") {
		t.Errorf("failed(): test_setup %v guc %v never_ran %v", r.failed("test_setup"), r.failed("guc"), r.failed("never_ran"))
	}
	if len(r.Diffs["guc"]) != 4 || len(r.Diffs["stats"]) != 3 {
		t.Errorf("diff lines: guc %d (want 4), stats %d (want 3)", len(r.Diffs["guc"]), len(r.Diffs["stats"]))
	}
	if got := strings.Join(r.Diffs["guc"][:2], "|"); got != "--- expected/guc.out|+++ results/guc.out" {
		t.Errorf("guc's diff header %q, want the short paths", got)
	}
	if r.Tail != "1 of 3 tests failed." {
		t.Errorf("tail %q", r.Tail)
	}
}

func TestRegressCauseReconnectIsBackendReuse(t *testing.T) {
	got := regressCause([]string{"- t", "+ f"}, "select 1;\n\\c\nselect 2;\n")
	if !strings.HasPrefix(got, "backend reuse") {
		t.Errorf("cause %q, want backend reuse", got)
	}
	if got := regressCause([]string{"- t", "+ f"}, "select 1;\n"); !strings.HasPrefix(got, "not categorised") {
		t.Errorf("without a reconnect: cause %q", got)
	}
}
