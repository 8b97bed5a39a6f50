package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// go test -json of one package, trimmed: a pass, a failing test with one
// failing and one passing subtest, a test that never ended (the package
// timed out), and go test's own non-JSON line.
const sampleTestJSON = `{"Time":"2026-12-03T10:00:00Z","Action":"start","Package":"github.com/jackc/pgx/v5/stdlib"}
{"Time":"2026-12-03T10:00:01Z","Action":"run","Package":"github.com/jackc/pgx/v5/stdlib","Test":"TestA"}
{"Time":"2026-12-03T10:00:01Z","Action":"pass","Package":"github.com/jackc/pgx/v5/stdlib","Test":"TestA"}
{"Time":"2026-12-03T10:00:02Z","Action":"run","Package":"github.com/jackc/pgx/v5/stdlib","Test":"TestB"}
{"Time":"2026-12-03T10:00:02Z","Action":"run","Package":"github.com/jackc/pgx/v5/stdlib","Test":"TestB/x"}
{"Time":"2026-12-03T10:00:02Z","Action":"output","Package":"github.com/jackc/pgx/v5/stdlib","Test":"TestB/x","Output":"    b_test.go:12: ERROR: prepared statement \"stmt_1\" already exists (SQLSTATE 42P05)\n"}
{"Time":"2026-12-03T10:00:02Z","Action":"fail","Package":"github.com/jackc/pgx/v5/stdlib","Test":"TestB/x"}
{"Time":"2026-12-03T10:00:02Z","Action":"run","Package":"github.com/jackc/pgx/v5/stdlib","Test":"TestB/y"}
{"Time":"2026-12-03T10:00:02Z","Action":"pass","Package":"github.com/jackc/pgx/v5/stdlib","Test":"TestB/y"}
{"Time":"2026-12-03T10:00:02Z","Action":"fail","Package":"github.com/jackc/pgx/v5/stdlib","Test":"TestB"}
{"Time":"2026-12-03T10:00:03Z","Action":"run","Package":"github.com/jackc/pgx/v5/stdlib","Test":"TestC"}
{"Time":"2026-12-03T10:05:03Z","Action":"output","Package":"github.com/jackc/pgx/v5/stdlib","Output":"panic: test timed out after 5m0s\n"}
{"Time":"2026-12-03T10:05:04Z","Action":"fail","Package":"github.com/jackc/pgx/v5/stdlib","Elapsed":304}
FAIL	github.com/jackc/pgx/v5/stdlib	304.1s
`

const sampleMetrics = `# TYPE pgone_route_requests_total counter
pgone_route_requests_total{database="pgx_test",route="replica",reason="read"} 7
pgone_route_requests_total{database="other",route="replica",reason="read"} 3
pgone_route_requests_total{database="pgx_test",route="primary",reason="write"} 0
pgone_proxy_pins_total{cause="listen"} 2
go_goroutines 12
`

func writeRun(t *testing.T, target, json, metrics string) *targetRun {
	t.Helper()
	path := filepath.Join(t.TempDir(), target+".json")
	if err := os.WriteFile(path, []byte(json), 0o644); err != nil {
		t.Fatal(err)
	}
	if metrics != "" {
		if err := os.WriteFile(strings.TrimSuffix(path, ".json")+".metrics", []byte(metrics), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run, err := readRun(target, path)
	if err != nil {
		t.Fatal(err)
	}
	return run
}

func TestReadRun(t *testing.T) {
	run := writeRun(t, "tx", sampleTestJSON, sampleMetrics)
	if got := run.count(true).String(); got != "1 passed, 1 failed, 0 skipped, 1 without result" {
		t.Errorf("top-level counts %q", got)
	}
	if got := run.count(false); got != (counts{pass: 2, fail: 2, noResult: 1}) {
		t.Errorf("all counts %+v", got)
	}
	var leaves []string
	for _, r := range run.leafFailures() {
		leaves = append(leaves, r.Key())
	}
	if want := []string{"stdlib TestB/x", "stdlib TestC"}; !slices.Equal(leaves, want) {
		t.Errorf("leaf failures %q, want %q", leaves, want)
	}
	if why := run.PkgFailed["github.com/jackc/pgx/v5/stdlib"]; why != "panic: test timed out after 5m0s" {
		t.Errorf("package failure %q", why)
	}
	if d := run.End.Sub(run.Begin); d.Seconds() != 304 {
		t.Errorf("run took %s, want 5m4s", d)
	}
	if want := "routed: replica/read 10; pins: listen 2"; run.Counters != want {
		t.Errorf("counters %q, want %q", run.Counters, want)
	}
	if c := cause(run.Tests["stdlib TestB/x"]); !strings.HasPrefix(c, "42P05") {
		t.Errorf("cause of TestB/x %q", c)
	}
	if c := cause(run.Tests["stdlib TestC"]); !strings.HasPrefix(c, "hang") {
		t.Errorf("cause of TestC %q", c)
	}
}

// TestFailsIn: a leaf failure through pgone counts as failing directly too
// when it, or the test it belongs to, failed directly.
func TestFailsIn(t *testing.T) {
	direct := writeRun(t, "direct", sampleTestJSON, "")
	for key, want := range map[string]bool{
		"TestB/x":     true,  // failed directly itself
		"TestB/y/sub": true,  // TestB failed directly
		"TestA":       false, // passed directly
		"TestA/sub":   false,
		"TestD":       false, // never ran directly
	} {
		f := &testResult{Package: "github.com/jackc/pgx/v5/stdlib", Name: key}
		if got := failsIn(direct, f); got != want {
			t.Errorf("failsIn(%s) = %v, want %v", key, got, want)
		}
	}
}
