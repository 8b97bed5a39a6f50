package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/pgone/pgone/config"
)

// TestServeLoggerAggregatesAndBoundsLines checks the logger pgone serves
// with: a flood of one warning is not written line for line, and a huge
// attribute (a 1 MB admin command) makes a line under 2 KB.
func TestServeLoggerAggregatesAndBoundsLines(t *testing.T) {
	for _, format := range []string{config.LogText, config.LogJSON} {
		var out bytes.Buffer
		var lf logFlags
		log, err := lf.logger(&out, config.Log{Format: format, Level: config.LevelInfo})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 1000; i++ {
			log.Info("cancel request for unknown key ignored", "client", "127.0.0.1:1")
		}
		if n := strings.Count(out.String(), "\n"); n > 10 {
			t.Errorf("%s: %d lines for 1,000 identical records", format, n)
		}
		out.Reset()
		log.Info("admin console command failed", "err", "unknown admin console command: "+strings.Repeat("x", 1<<20))
		if n := out.Len(); n > 2048 || !strings.Contains(out.String(), "truncated") {
			t.Errorf("%s: a line of %d bytes for a 1 MB attribute: %.200s", format, n, out.String())
		}
	}
}
