package proxy_test

import (
	"errors"
	"testing"

	"github.com/pgone/pgone/proxy"
)

// TestConsoleShowExtension: a SHOW registered with SetShow answers in the
// console with its columns (integer ones as int8), gets the optional word
// after its name, and its error reaches the client as 22023; built-in
// SHOWs keep their names and a third word elsewhere is a syntax error.
func TestConsoleShowExtension(t *testing.T) {
	t.Parallel()
	args := make(chan string, 10)
	p := startObservedProxy(t, nil, func(s *proxy.Server) {
		s.SetShow("queries", func(arg string) (proxy.ConsoleTable, error) {
			args <- arg
			if arg == "bogus" {
				return proxy.ConsoleTable{}, errors.New("unknown order")
			}
			return proxy.ConsoleTable{Columns: []string{"fingerprint", "calls"}, Ints: []bool{false, true},
				Rows: [][]string{{"00ff", "7"}}}, nil
		})
	})
	c := p.console(t, adminUser, adminPassword)
	tb := show(t, c, "SHOW QUERIES p99;")
	if gotArg := <-args; gotArg != "p99" || len(tb.rows) != 1 || tb.rows[0]["calls"] != "7" || tb.oids[1] != 20 || tb.oids[0] != 25 {
		t.Errorf("SHOW QUERIES p99: %+v; want the extension's row, calls as int8", tb)
	}
	show(t, c, "SHOW QUERIES")
	if gotArg := <-args; gotArg != "" {
		t.Errorf("SHOW QUERIES passed %q; want no argument", gotArg)
	}
	if pe := consoleErr(t, c, "SHOW QUERIES bogus"); pe.Code != "22023" {
		t.Errorf("extension error: %s %s; want 22023", pe.Code, pe.Message)
	}
	if pe := consoleErr(t, c, "SHOW POOLS extra"); pe.Code != "42601" {
		t.Errorf("SHOW POOLS extra: %s; want 42601", pe.Code)
	}
	if pe := consoleErr(t, c, "SHOW TUNER"); pe.Code != "42601" {
		t.Errorf("an unregistered SHOW: %s; want 42601", pe.Code)
	}
	if tb := show(t, c, "SHOW VERSION"); len(tb.rows) != 1 {
		t.Errorf("SHOW VERSION: %+v; want its row", tb)
	}
}
