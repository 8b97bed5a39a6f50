package proxy_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/internal/logx"
	"github.com/pgone/pgone/proxy"
)

// logLines is a log destination tests read while pgone writes to it.
type logLines struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// matching returns the lines that contain every one of subs.
func (l *logLines) matching(subs ...string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range strings.Split(l.buf.String(), "\n") {
		ok := line != ""
		for _, s := range subs {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}

// startLoggedProxy starts pgone with an admin user and its log written, as
// `pgone serve` writes it (text through logx), to out.
func startLoggedProxy(t *testing.T, out io.Writer, opts logx.Options, mutate func(*config.Config)) *testProxy {
	t.Helper()
	log := slog.New(logx.New(slog.NewTextHandler(out, nil), opts))
	return serveProxy(t, validConfig(t, adminConfig(), mutate), log, nil)
}

var repeatedCount = regexp.MustCompile(`repeated=(\d+)`)

// accounted counts the lines with msg: those logged in full, the summaries,
// and how many records they stand for together.
func (l *logLines) accounted(msg string) (full, summaries, total int) {
	for _, line := range l.matching(msg) {
		if m := repeatedCount.FindStringSubmatch(line); m != nil {
			n, _ := strconv.Atoi(m[1])
			summaries++
			total += n
		} else {
			full++
			total++
		}
	}
	return
}

// TestLogBogusCancelFloodIsAggregatedWithClientAddress sends 1,000 cancel
// requests with keys pgone never gave out: the log shows a few lines and
// a count that accounts for every one, and each line names the client.
func TestLogBogusCancelFloodIsAggregatedWithClientAddress(t *testing.T) {
	t.Parallel()
	var out logLines
	p := startLoggedProxy(t, &out, logx.Options{Interval: time.Second, Burst: 5}, nil)
	const flood = 1000
	const msg = "cancel request for unknown key ignored"
	addr := net.JoinHostPort(p.Host, strconv.Itoa(p.Port))
	secret := []byte{0xde, 0xad, 0xbe, 0xef}
	for i := 0; i < flood; i++ {
		if err := cancelVia(addr, uint32(1_000_000+i), secret); err != nil { // pgone closes a cancel connection without a reply
			t.Fatalf("cancel %d: %v", i, err)
		}
	}
	waitUntil(t, "every bogus cancel logged or counted", func() bool { _, _, n := out.accounted(msg); return n == flood })
	full, summaries, _ := out.accounted(msg)
	if summaries == 0 || full+summaries > 60 {
		t.Errorf("%d full lines and %d summaries for %d bogus cancels, want a bounded few with a count", full, summaries, flood)
	}
	for _, l := range out.matching(msg) {
		if !strings.Contains(l, "client=127.0.0.1:") {
			t.Errorf("cancel line without the client address: %s", l)
		}
	}
}

// TestLogHugeAdminCommandLineUnder2KB runs a 1 MB unknown console command:
// the client gets its error, and the log line about it stays under 2 KB.
func TestLogHugeAdminCommandLineUnder2KB(t *testing.T) {
	t.Parallel()
	var out logLines
	p := startLoggedProxy(t, &out, logx.Options{}, nil)
	ctx := testCtx(t)
	c, err := pgconn.Connect(ctx, p.DSN(adminUser, adminPassword, proxy.AdminDatabase))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, "SHOW "+strings.Repeat("x", 1<<20)).ReadAll(); err == nil {
		t.Fatal("a 1 MB unknown console command succeeded")
	}
	lines := out.matching("admin console command failed")
	if len(lines) != 1 {
		t.Fatalf("%d log lines for the failed command, want 1", len(lines))
	}
	if n := len(lines[0]) + 1; n > 2048 || !strings.Contains(lines[0], "truncated") {
		t.Errorf("a log line of %d bytes for a 1 MB command: %.300s", n, lines[0])
	}
	if !strings.Contains(lines[0], "client=127.0.0.1:") {
		t.Errorf("console line without the client address: %.300s", lines[0])
	}
}

// TestLogConnectionLinesNameTheClient checks that a session's lines carry
// the address the client connects from.
func TestLogConnectionLinesNameTheClient(t *testing.T) {
	t.Parallel()
	var out logLines
	p := startLoggedProxy(t, &out, logx.Options{}, nil)
	nc := dialProxy(t, p)
	defer nc.Close()
	fe := pgproto3.NewFrontend(nc, nc)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber,
		Parameters: map[string]string{"user": "trustuser", "database": "no such database here"}})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	for {
		msg, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := msg.(*pgproto3.ErrorResponse); ok {
			break
		}
	}
	client := "client=" + nc.LocalAddr().String()
	waitUntil(t, "the rejection logged", func() bool { return len(out.matching("client rejected")) > 0 })
	if lines := out.matching("client rejected", client); len(lines) != 1 {
		t.Errorf("no rejection line with %s: %q", client, out.matching("client rejected"))
	}
}

// TestLogLoginTimeoutsAreAggregated leaves sockets silent past
// client_login_timeout: each is closed, and the log has a few lines and a
// count for all of them, each naming a client.
func TestLogLoginTimeoutsAreAggregated(t *testing.T) {
	t.Parallel()
	var out logLines
	p := startLoggedProxy(t, &out, logx.Options{Interval: time.Second, Burst: 3}, func(c *config.Config) {
		c.Proxy.Limits.ClientLoginTimeout = 200 * time.Millisecond
	})
	const silent = 40
	const msg = "client_login_timeout expired"
	var wg sync.WaitGroup
	for i := 0; i < silent; i++ {
		nc := dialProxy(t, p)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer nc.Close()
			_, _ = io.ReadAll(nc) // the FATAL, then pgone closes
		}()
	}
	wg.Wait()
	waitUntil(t, "every login timeout logged or counted", func() bool { _, _, n := out.accounted(msg); return n == silent })
	full, summaries, _ := out.accounted(msg)
	if summaries == 0 || full > 3*(summaries+1) {
		t.Errorf("%d full lines and %d summaries for %d login timeouts", full, summaries, silent)
	}
	for _, l := range out.matching(msg) {
		if !strings.Contains(l, "client=127.0.0.1:") {
			t.Errorf("login timeout line without the client address: %s", l)
		}
	}
}
