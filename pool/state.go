package pool

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgone/pgone/internal/wire"
)

// SessionState is what a server connection carries from the clients that
// used it in transaction mode, so the next client can tell what to redo.
// Its owner is the session holding the connection.
type SessionState struct {
	// Settings is the key of the session settings last applied; "" means
	// the server defaults (a fresh or reset connection).
	Settings string
	// UnnamedOwner identifies the client session whose unnamed statement
	// the server holds (0: unknown or nobody's). The proxy re-creates a
	// client's unnamed statement on a server it does not own.
	UnnamedOwner uint64
	// prepared maps server-side statement names to a use counter, for LRU.
	prepared map[string]uint64
	tick     uint64
}

// HasPrepared reports whether name is prepared on the connection, and marks it used.
func (s *SessionState) HasPrepared(name string) bool {
	if _, ok := s.prepared[name]; !ok {
		return false
	}
	s.tick++
	s.prepared[name] = s.tick
	return true
}

// AddPrepared records name as prepared. When more than limit are recorded
// it returns the least recently used one, which the caller closes.
func (s *SessionState) AddPrepared(name string, limit int) (evict string) {
	if s.prepared == nil {
		s.prepared = map[string]uint64{}
	}
	s.tick++
	s.prepared[name] = s.tick
	if limit <= 0 || len(s.prepared) <= limit {
		return ""
	}
	var oldest uint64 = ^uint64(0)
	for n, t := range s.prepared {
		if t < oldest && n != name {
			oldest, evict = t, n
		}
	}
	delete(s.prepared, evict)
	return evict
}

// ForgetPrepared removes name from the record.
func (s *SessionState) ForgetPrepared(name string) { delete(s.prepared, name) }

// ForgetAllPrepared empties the record (after DISCARD ALL or DEALLOCATE ALL).
func (s *SessionState) ForgetAllPrepared() { clear(s.prepared) }

// PreparedCount is the number of statements recorded.
func (s *SessionState) PreparedCount() int { return len(s.prepared) }

// Query runs sql with the simple protocol and returns the rows of the last
// result in text format. ParameterStatus and transaction status are recorded
// as in Exec.
func (c *Conn) Query(ctx context.Context, sql string) ([][]string, error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = c.net.SetDeadline(dl)
		defer c.net.SetDeadline(time.Time{})
	}
	buf, err := (&pgproto3.Query{String: sql}).Encode(nil)
	if err != nil {
		return nil, err
	}
	if _, err := c.w.Write(buf); err != nil {
		return nil, err
	}
	if err := c.w.Flush(); err != nil {
		return nil, err
	}
	var rows [][]string
	var first error
	for {
		typ, frame, err := c.frames.Next()
		if err != nil {
			return nil, err
		}
		body := wire.Body(frame)
		switch typ {
		case 'T':
			rows = rows[:0]
		case 'D':
			var dr pgproto3.DataRow
			if err := dr.Decode(body); err != nil {
				return nil, err
			}
			row := make([]string, len(dr.Values))
			for i, v := range dr.Values {
				row[i] = string(v)
			}
			rows = append(rows, row)
		case 'Z':
			if len(body) == 1 {
				c.TxStatus = body[0]
			}
			return rows, first
		case 'S':
			var ps pgproto3.ParameterStatus
			if err := ps.Decode(body); err == nil {
				c.Params[ps.Name] = ps.Value
			}
		case 'E':
			var er pgproto3.ErrorResponse
			if err := er.Decode(body); err != nil {
				return nil, err
			}
			if first == nil {
				first = pgconn.ErrorResponseToPgError(&er)
			}
			if er.Severity == "FATAL" || er.Severity == "PANIC" {
				return nil, first
			}
		}
	}
}
