package pool

import (
	"context"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgone/pgone/internal/pgmsg"
	"github.com/pgone/pgone/internal/wire"
)

// Exec runs sql with the simple protocol and reads to ReadyForQuery. It
// records ParameterStatus values and the transaction status, and returns the
// first error the server sent as a *pgconn.PgError.
func (c *Conn) Exec(ctx context.Context, sql string) error {
	_, err := c.simpleQuery(ctx, sql, nil)
	return err
}

// Query runs sql with the simple protocol and returns the rows of the last
// result in text format (NULL as ""). ParameterStatus and transaction
// status are recorded as in Exec.
func (c *Conn) Query(ctx context.Context, sql string) ([][]string, error) {
	var rows [][]string
	ready, err := c.simpleQuery(ctx, sql, func(typ byte, body []byte) error {
		if typ == pgmsg.RowDescription {
			rows = rows[:0] // a new result: keep only the last
			return nil
		}
		row := pgmsg.TextValues(body)
		if row == nil {
			return pgmsg.ErrMalformed
		}
		rows = append(rows, row)
		return nil
	})
	if !ready {
		return nil, err
	}
	return rows, err
}

// simpleQuery sends sql as one Query message and reads the replies up to
// ReadyForQuery, the one reply loop of Exec and Query. It records
// ParameterStatus and the transaction status, passes RowDescription
// and DataRow bodies to onRow when set, and returns the first
// ErrorResponse as a *pgconn.PgError. A FATAL or PANIC ends it at once: no
// ReadyForQuery follows. ready reports whether ReadyForQuery was read.
func (c *Conn) simpleQuery(ctx context.Context, sql string, onRow func(typ byte, body []byte) error) (ready bool, err error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = c.net.SetDeadline(dl)
		defer c.net.SetDeadline(time.Time{})
	}
	if _, err := c.w.Write(pgmsg.AppendQuery(nil, sql)); err != nil {
		return false, err
	}
	if err := c.w.Flush(); err != nil {
		return false, err
	}
	var first error
	for {
		typ, frame, err := c.frames.Next()
		if err != nil {
			return false, err
		}
		body := wire.Body(frame)
		switch typ {
		case pgmsg.RowDescription, pgmsg.DataRow:
			if onRow != nil {
				if err := onRow(typ, body); err != nil {
					return false, err
				}
			}
		case pgmsg.ReadyForQuery:
			if len(body) == 1 {
				c.TxStatus = body[0]
			}
			return true, first
		case pgmsg.ParameterStatus:
			var ps pgproto3.ParameterStatus
			if err := ps.Decode(body); err == nil {
				c.Params[ps.Name] = ps.Value
			}
		case pgmsg.ErrorResponse:
			pe, err := serverError(body)
			if err != nil {
				return false, err
			}
			if first == nil {
				first = pe
			}
			if pgmsg.IsFatal(body) { // by the unlocalized severity: lc_messages translates the other
				return false, first
			}
		}
	}
}

// serverError decodes an ErrorResponse body, the one place pool does, into
// the error pgx clients know (pgconn.ErrorResponseToPgError's mapping).
func serverError(body []byte) (*pgconn.PgError, error) {
	var er pgmsg.ErrorMsg
	if err := er.Decode(body); err != nil {
		return nil, err
	}
	return &pgconn.PgError{
		Severity:            string(er.Severity),
		SeverityUnlocalized: string(er.SeverityUnlocalized),
		Code:                string(er.Code),
		Message:             string(er.Message),
		Detail:              string(er.Detail),
		Hint:                string(er.Hint),
		Position:            atoi32(er.Position),
		InternalPosition:    atoi32(er.InternalPosition),
		InternalQuery:       string(er.InternalQuery),
		Where:               string(er.Where),
		SchemaName:          string(er.Schema),
		TableName:           string(er.Table),
		ColumnName:          string(er.Column),
		DataTypeName:        string(er.DataType),
		ConstraintName:      string(er.Constraint),
		File:                string(er.File),
		Line:                atoi32(er.Line),
		Routine:             string(er.Routine),
	}, nil
}

// atoi32 reads a decimal error field as pgproto3 does: 0 if it is not one.
func atoi32(b []byte) int32 {
	n, _ := strconv.ParseInt(string(b), 10, 32)
	return int32(n)
}
