package proxy

import (
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgone/pgone/pool"
)

func errorFrame(t testing.TB, code string) []byte {
	t.Helper()
	b, err := (&pgproto3.ErrorResponse{Severity: "ERROR", Code: code, Message: "boom", Detail: "d"}).Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSqlstateOf(t *testing.T) {
	if got := string(sqlstateOf(errorFrame(t, "22012"))); got != "22012" {
		t.Errorf("sqlstateOf = %q, want 22012", got)
	}
	for _, frame := range [][]byte{
		{'E', 0, 0, 0, 4},                     // no fields
		{'E', 0, 0, 0, 9, 'S', 'E', 'R', 'R'}, // unterminated field
		{'E', 0, 0, 0, 8, 'M', 'x', 0, 0},     // no code
		{'E', 0, 0, 0, 7, 'C', '4', '2'},      // cut short
	} {
		if got := sqlstateOf(frame); got != nil {
			t.Errorf("sqlstateOf(%q) = %q, want nil", frame, got)
		}
	}
}

func TestSessionStatsCountsRequests(t *testing.T) {
	var c pool.Counters
	st := newSessionStats()
	st.rec = c.Recorder()

	st.receivedFrame(10)
	st.requestLocked(2) // a pipeline of two autocommit requests
	st.sentFrame(30)
	st.readyLocked('I')
	st.readyLocked('I')
	st.requestLocked(1) // BEGIN
	st.readyLocked('T')
	st.requestLocked(1) // COMMIT
	st.readyLocked('I')
	st.readyLocked('I') // a ReadyForQuery for nothing pgone counted: ignored
	got := c.Totals()
	if got.Queries != 4 || got.Transactions != 3 || got.Received != 10 || got.Sent != 30 {
		t.Fatalf("totals %+v: want 4 queries, 3 transactions, 10 bytes in, 30 out", got)
	}
	if st.outstanding != 0 || !st.xactStart.IsZero() {
		t.Fatalf("state left: outstanding %d, xactStart %v", st.outstanding, st.xactStart)
	}
}

func TestParseConsoleCommand(t *testing.T) {
	for _, tc := range []struct {
		in, verb, arg string
		bad           bool
	}{
		{"SHOW POOLS;", "show", "pools", false},
		{"  show   Clients ;; ", "show", "clients", false},
		{"pause", "pause", "", false},
		{"PAUSE MyDb", "pause", "MyDb", false},
		{`kill "my""db"`, "kill", `my"db`, false},
		{"", "", "", false},
		{";", "", "", false},
		{"SHOW POOLS; SHOW STATS", "", "", true},
		{"PAUSE a b", "", "", true},
		{"show queries P99;", "show", "queries", false},
		{"SHOW a b c", "", "", true},
	} {
		cmd, err := parseConsoleCommand(tc.in)
		if (err != nil) != tc.bad || cmd.verb != tc.verb || cmd.arg != tc.arg {
			t.Errorf("parse %q = %+v, %v; want %q %q (error %v)", tc.in, cmd, err, tc.verb, tc.arg, tc.bad)
		}
	}
}

func TestConfigRowsFlattenAndMask(t *testing.T) {
	type inner struct {
		Port     int           `yaml:"port"`
		Password string        `yaml:"password"`
		Timeout  time.Duration `yaml:"timeout"`
	}
	type cfg struct {
		Top   inner            `yaml:",inline"`
		Users map[string]inner `yaml:"users"`
		List  []string         `yaml:"list"`
		Reps  []inner          `yaml:"reps"`
		Skip  string           `yaml:"-"`
	}
	c := cfg{
		Top:   inner{Port: 1, Password: "top-secret", Timeout: 90 * time.Second},
		Users: map[string]inner{"bob": {Password: "bob-secret"}},
		List:  []string{"a", "b"},
		Reps:  []inner{{Port: 5}},
		Skip:  "hidden",
	}
	rows := ConfigRows(c, cfg{Top: inner{Port: 1}}, "port")
	got := map[string]ConfigRow{}
	for _, r := range rows {
		got[r.Key] = r
		if strings.Contains(r.Value, "secret") || strings.Contains(r.Value, "hidden") {
			t.Errorf("row %+v leaks", r)
		}
	}
	for key, want := range map[string]ConfigRow{
		"port":               {Key: "port", Value: "1", Default: "1"},
		"password":           {Key: "password", Value: "***", Changeable: true},
		"timeout":            {Key: "timeout", Value: "1m30s", Default: "0s", Changeable: true},
		"users.bob.password": {Key: "users.bob.password", Value: "***", Changeable: true},
		"list":               {Key: "list", Value: "a,b", Changeable: true},
		"reps[0].port":       {Key: "reps[0].port", Value: "5", Changeable: true},
	} {
		if got[key] != want {
			t.Errorf("row %s = %+v, want %+v", key, got[key], want)
		}
	}
}

// BenchmarkSessionStatsRequest is what the relay adds to one request of
// four frames each way.
func BenchmarkSessionStatsRequest(b *testing.B) {
	var c pool.Counters
	st := newSessionStats()
	st.rec = c.Recorder()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		for j := 0; j < 4; j++ {
			st.receivedFrame(20)
		}
		st.requestLocked(1)
		for j := 0; j < 4; j++ {
			st.sentFrame(40)
		}
		st.readyLocked('I')
	}
}

func BenchmarkSqlstateOf(b *testing.B) {
	frame := errorFrame(b, "40001")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if sqlstateOf(frame) == nil {
			b.Fatal("no code")
		}
	}
}
