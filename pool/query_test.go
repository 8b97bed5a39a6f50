package pool

import (
	"bufio"
	"context"
	"errors"
	"net"
	"reflect"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgone/pgone/internal/wire"
)

// scriptedConn is a Conn whose server answers the first Query with replies
// (a protocol case a real server is not asked to produce on demand).
func scriptedConn(t *testing.T, replies ...pgproto3.BackendMessage) *Conn {
	t.Helper()
	client, server := net.Pipe()
	t.Cleanup(func() { client.Close(); server.Close() })
	go func() {
		be := pgproto3.NewBackend(server, server)
		if _, err := be.Receive(); err != nil {
			return
		}
		for _, m := range replies {
			be.Send(m)
		}
		_ = be.Flush()
	}()
	r := bufio.NewReader(client)
	return &Conn{net: client, r: r, w: bufio.NewWriter(client), frames: wire.NewReader(r, 0), Params: map[string]string{}}
}

func TestQueryKeepsLastResultFirstErrorAndStatus(t *testing.T) {
	c := scriptedConn(t,
		&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("a")}}},
		&pgproto3.DataRow{Values: [][]byte{[]byte("old")}},
		&pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")},
		&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("a")}, {Name: []byte("b")}}},
		&pgproto3.DataRow{Values: [][]byte{[]byte("1"), []byte("x")}},
		&pgproto3.DataRow{Values: [][]byte{[]byte("2"), nil}},
		&pgproto3.CommandComplete{CommandTag: []byte("SELECT 2")},
		&pgproto3.ParameterStatus{Name: "TimeZone", Value: "UTC"},
		&pgproto3.ErrorResponse{Severity: "ERROR", Code: "22012", Message: "division by zero"},
		&pgproto3.ErrorResponse{Severity: "ERROR", Code: "XX000", Message: "second"},
		&pgproto3.ReadyForQuery{TxStatus: 'E'},
	)
	rows, err := c.Query(context.Background(), "select")
	if want := [][]string{{"1", "x"}, {"2", ""}}; !reflect.DeepEqual(rows, want) {
		t.Errorf("rows %q, want the last result %q", rows, want)
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "22012" || pe.Message != "division by zero" {
		t.Errorf("error %v, want the first one (22012)", err)
	}
	if c.TxStatus != 'E' || c.Params["TimeZone"] != "UTC" {
		t.Errorf("status %q params %v: ReadyForQuery or ParameterStatus not recorded", c.TxStatus, c.Params)
	}
}

func TestExecStopsAtFatal(t *testing.T) {
	c := scriptedConn(t,
		&pgproto3.ErrorResponse{Severity: "FATAL", Code: "57P01", Message: "terminating connection due to administrator command"},
		// Nothing follows a FATAL: Exec must not wait for ReadyForQuery.
	)
	err := c.Exec(context.Background(), "select")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "57P01" || pe.Severity != "FATAL" {
		t.Fatalf("Exec: %v, want the FATAL 57P01", err)
	}
	c = scriptedConn(t,
		&pgproto3.ErrorResponse{Severity: "PANIC", Code: "XX000", Message: "panic"},
	)
	if rows, err := c.Query(context.Background(), "select"); rows != nil || !errors.As(err, &pe) || pe.Code != "XX000" {
		t.Fatalf("Query: %v %v, want no rows and the PANIC", rows, err)
	}
	// lc_messages translates the severity; the unlocalized one (V) says FATAL.
	c = scriptedConn(t,
		&pgproto3.ErrorResponse{Severity: "ВАЖНО", SeverityUnlocalized: "FATAL", Code: "57P01", Message: "terminating connection"},
	)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Exec(ctx, "select"); !errors.As(err, &pe) || pe.Code != "57P01" {
		t.Fatalf("Exec with a localized FATAL: %v, want the 57P01", err)
	}
	c = scriptedConn(t, &pgproto3.CommandComplete{CommandTag: []byte("SET")}, &pgproto3.ReadyForQuery{TxStatus: 'T'})
	if err := c.Exec(context.Background(), "set"); err != nil || c.TxStatus != 'T' {
		t.Fatalf("Exec: %v, status %q; want nil and T", err, c.TxStatus)
	}
}
