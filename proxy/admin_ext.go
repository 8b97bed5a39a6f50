package proxy

import (
	"strings"

	"github.com/pgone/pgone/pgerr"
)

// Console commands that other parts provide (the tuner's SHOW QUERIES and
// SHOW TUNER): cmd/pgone registers them with SetShow, so the proxy does
// not import those parts. An extension may take one word after its name
// ("SHOW QUERIES p99").

// ConsoleTable is an extension's answer: column names, which of them are
// integers (int8, as PgBouncer's counters), and text rows.
type ConsoleTable struct {
	Columns []string
	Ints    []bool
	Rows    [][]string
}

// ShowFunc answers SHOW <name> [arg]; arg is "" when none was given. An
// error is sent to the client as given if it is a pgerr error, else as a
// 22023 (invalid parameter value).
type ShowFunc func(arg string) (ConsoleTable, error)

// SetShow adds SHOW name (lower case) to the console; a built-in SHOW of
// the same name wins. Call it before Serve.
func (s *Server) SetShow(name string, f ShowFunc) {
	s.admin.mu.Lock()
	defer s.admin.mu.Unlock()
	if s.admin.shows == nil {
		s.admin.shows = map[string]ShowFunc{}
	}
	s.admin.shows[strings.ToLower(name)] = f
}

// showExtension runs an extension's SHOW, ok false when there is none.
func (s *Server) showExtension(name, arg string) (rs resultSet, ok bool, err error) {
	s.admin.mu.Lock()
	f := s.admin.shows[name]
	s.admin.mu.Unlock()
	if f == nil {
		return resultSet{}, false, nil
	}
	tb, err := f(arg)
	if err != nil {
		if _, isPG := err.(*pgerr.Error); !isPG {
			err = pgerr.New(pgerr.InvalidParameterValue, "SHOW %s: %v", name, err)
		}
		return resultSet{}, true, err
	}
	rs.cols = textCols(tb.Columns...)
	for i := range rs.cols {
		if i < len(tb.Ints) && tb.Ints[i] {
			rs.cols[i].oid = oidInt8
		}
	}
	rs.rows = tb.Rows
	return rs, true, nil
}
