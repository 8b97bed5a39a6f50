package router

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// crashChildEnv names the deep text a child test process routes.
const crashChildEnv = "PGONE_ROUTER_CRASH_CHILD"

// deepTexts are texts whose parse tree is deep enough to overflow the C
// stack inside pg_query (SIGSEGV, the whole process dies) when parsed:
// left-associative chains nest one node per operator. pg_query_go alone
// crashed at about 24,000 terms with an 8 MB stack (issue 11, item 1).
// The name's suffix is the reason expected: the 60,000 UNIONs are also
// over the length bound.
var deepTexts = map[string]func() string{
	"plus_30000/too_complex":   func() string { return "select (1" + strings.Repeat("+1", 29999) + ")" },
	"concat_30000/too_complex": func() string { return "select 'a'" + strings.Repeat("||'a'", 29999) + " as temp" },
	"cast_30000/too_complex":   func() string { return "select 1" + strings.Repeat("::int", 30000) },
	"join_30000/too_complex":   func() string { return "select * from t0" + strings.Repeat(" join t on true", 30000) },
	"operator_30000/too_complex": func() string {
		return "select 1" + strings.Repeat(" operator(pg_catalog.+) 1", 29999)
	},
	"union_60000/too_long": func() string { return "select 1" + strings.Repeat(" union all select 1", 60000) },
}

// TestRouteDeepTextDoesNotCrash routes each deep text in a child process,
// so that a crash fails this test instead of killing the test binary, and
// checks the child lived and sent the text to the primary unparsed.
func TestRouteDeepTextDoesNotCrash(t *testing.T) {
	if name := os.Getenv(crashChildEnv); name != "" {
		d := NewRouter(0).Route(deepTexts[name](), Session{})
		fmt.Printf("decision target=%s reason=%s\n", d.Target, d.Reason)
		return
	}
	for name := range deepTexts {
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestRouteDeepTextDoesNotCrash$", "-test.count=1")
			cmd.Env = append(childEnv(), crashChildEnv+"="+name)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("routing %s killed the process: %v\n%s", name, err, firstLines(string(out), 5))
			}
			_, reason, _ := strings.Cut(name, "/")
			if want := "decision target=primary reason=" + reason; !strings.Contains(string(out), want) {
				t.Fatalf("routing %s: want %q in the child's output, got:\n%s", name, want, firstLines(string(out), 5))
			}
		})
	}
}

// childEnv is the environment of a child test process. A -race binary
// sleeps a second before it exits (the race runtime's atexit_sleep_ms),
// which made each child cost a second; the child reports its races in its
// output all the same.
func childEnv() []string {
	return append(os.Environ(), "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}
