package logx_test

import (
	"bytes"
	"errors"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgone/pgone/internal/logx"
)

// lockedBuffer collects log output written from the caller and from the
// limiter's summary timers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := strings.TrimSuffix(b.buf.String(), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var repeatedRE = regexp.MustCompile(`repeated=(\d+)`)

func TestRepeatedRecordsAreAggregatedWithACount(t *testing.T) {
	var out lockedBuffer
	// The flood must fit in one window (it takes ~200 ms under -race on a
	// loaded machine; 200 ms windows split it in CI), so the window is long.
	log := slog.New(logx.New(slog.NewTextHandler(&out, nil), logx.Options{Interval: 3 * time.Second, Burst: 3}))
	const flood = 1000
	for i := 0; i < flood; i++ {
		log.With("client", "10.0.0.1:"+strconv.Itoa(40000+i)).Warn("cancel request for unknown key ignored")
		if i == 500 {
			log.Warn("another warning") // not hidden by the flood
		}
	}
	count := func() (shown, repeated int, other bool) {
		for _, l := range out.lines() {
			switch {
			case strings.Contains(l, "another warning"):
				other = true
			case strings.Contains(l, "cancel request for unknown key ignored"):
				shown++
				if m := repeatedRE.FindStringSubmatch(l); m != nil {
					n, _ := strconv.Atoi(m[1])
					repeated += n
				}
			}
		}
		return
	}
	waitFor(t, "the interval's summary", func() bool { _, r, _ := count(); return r > 0 })
	shown, repeated, other := count()
	if shown != 3+1 {
		t.Errorf("%d lines for %d identical warnings, want 3 in full and 1 summary:\n%s", shown, flood, strings.Join(out.lines(), "\n"))
	}
	if repeated != flood-3 {
		t.Errorf("the summary counts %d, want %d", repeated, flood-3)
	}
	if !other {
		t.Error("a different message was hidden by the flood")
	}
	for _, l := range out.lines() {
		if strings.Contains(l, "cancel request") && !strings.Contains(l, "client=10.0.0.1:") {
			t.Errorf("line lost its client attribute: %s", l)
		}
	}
}

func TestDebugRecordsAreNotAggregated(t *testing.T) {
	var out lockedBuffer
	log := slog.New(logx.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}), logx.Options{Burst: 1}))
	for i := 0; i < 50; i++ {
		log.Debug("step")
	}
	if n := len(out.lines()); n != 50 {
		t.Errorf("%d debug lines of 50", n)
	}
}

func TestEveryLineStaysUnderMaxLine(t *testing.T) {
	huge := strings.Repeat("x", 1<<20)
	controls := strings.Repeat("\x00\x01\"\\", 1<<18)
	cases := []struct {
		name string
		log  func(*slog.Logger)
	}{
		{"string attr", func(l *slog.Logger) { l.Info("admin console command failed", "command", huge) }},
		{"error attr", func(l *slog.Logger) { l.Info("admin console command failed", "err", errors.New(huge)) }},
		{"escaped bytes", func(l *slog.Logger) { l.Warn("bad input", "text", controls) }},
		{"message", func(l *slog.Logger) { l.Error(huge) }},
		{"many attrs", func(l *slog.Logger) {
			l.Info("many", "a", huge, "b", huge, "c", huge, "d", huge, "e", huge, "f", huge, "g", huge, "h", huge)
		}},
		{"with attrs", func(l *slog.Logger) { l.With("client", huge).With("part", huge).Info("connection", "err", huge) }},
		{"group", func(l *slog.Logger) { l.Info("grouped", slog.Group("g", "a", huge, "b", controls)) }},
		{"bytes", func(l *slog.Logger) { l.Info("raw", "frame", []byte(huge)) }},
		{"slice", func(l *slog.Logger) { l.Info("names", "tables", strings.Split(huge[:100000], "")) }},
	}
	for _, format := range []string{"text", "json"} {
		for _, tc := range cases {
			var out lockedBuffer
			var inner slog.Handler = slog.NewTextHandler(&out, nil)
			if format == "json" {
				inner = slog.NewJSONHandler(&out, nil)
			}
			tc.log(slog.New(logx.New(inner, logx.Options{})))
			lines := out.lines()
			if len(lines) != 1 {
				t.Fatalf("%s %s: %d lines, want 1", format, tc.name, len(lines))
			}
			if n := len(lines[0]) + 1; n > 2048 {
				t.Errorf("%s %s: a line of %d bytes, over 2 KB", format, tc.name, n)
			}
			if !strings.Contains(lines[0], "truncated") {
				t.Errorf("%s %s: no truncation marker: %.200s", format, tc.name, lines[0])
			}
		}
	}
}

func TestShortLinesAreUnchanged(t *testing.T) {
	var plain, wrapped bytes.Buffer
	opts := &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}
	write := func(l *slog.Logger) {
		l.With("client", "127.0.0.1:5555").Info("client rejected", "user", "bob", "err", errors.New("password authentication failed"), "n", 3)
	}
	write(slog.New(slog.NewJSONHandler(&plain, opts)))
	write(slog.New(logx.New(slog.NewJSONHandler(&wrapped, opts), logx.Options{})))
	if plain.String() != wrapped.String() {
		t.Errorf("a short line changed:\n%s\n%s", plain.String(), wrapped.String())
	}
}
