package pgmsg_test

import (
	"bytes"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgone/pgone/internal/pgmsg"
	"github.com/pgone/pgone/internal/wire"
)

// The fuzz targets feed arbitrary bodies to each decoder with pgproto3 as
// the oracle: a body decodes in pgmsg exactly when it decodes in pgproto3,
// to the same fields, and what decodes re-encodes to a frame pgproto3 reads
// back the same.

// seedBodies adds the bodies of pgproto3's encodings of msgs, and a few
// truncations of each.
func seedBodies(f *testing.F, msgs ...interface{ Encode([]byte) ([]byte, error) }) {
	f.Add([]byte{})
	f.Add([]byte{0})
	for _, m := range msgs {
		b, err := m.Encode(nil)
		if err != nil {
			f.Fatal(err)
		}
		body := wire.Body(b)
		f.Add(body)
		f.Add(body[:len(body)/2])
		f.Add(append(append([]byte{}, body...), 0, 1))
	}
}

// agree fails when exactly one of the decoders accepted the body.
func agree(t *testing.T, body []byte, ours, theirs error) bool {
	t.Helper()
	if (ours == nil) != (theirs == nil) {
		t.Fatalf("body %q: pgmsg error %v, pgproto3 error %v", body, ours, theirs)
	}
	return ours == nil
}

func FuzzParse(f *testing.F) {
	seedBodies(f, &pgproto3.Parse{Name: "s1", Query: "select $1::int", ParameterOIDs: []uint32{23, 0}}, &pgproto3.Parse{Query: "select 1"})
	f.Fuzz(func(t *testing.T, body []byte) {
		var m pgmsg.ParseMsg
		var want pgproto3.Parse
		if !agree(t, body, m.Decode(body), want.Decode(body)) {
			return
		}
		if string(m.Name) != want.Name || string(m.Query) != want.Query || m.NumParams() != len(want.ParameterOIDs) {
			t.Fatalf("pgmsg %q %q %d, pgproto3 %+v", m.Name, m.Query, m.NumParams(), want)
		}
		for i, oid := range want.ParameterOIDs {
			if m.ParamType(i) != oid {
				t.Fatalf("param %d: %d, pgproto3 %d", i, m.ParamType(i), oid)
			}
		}
		var got pgproto3.Parse
		if err := got.Decode(wire.Body(m.Encode(nil))); err != nil || got.Name != want.Name || got.Query != want.Query || len(got.ParameterOIDs) != len(want.ParameterOIDs) {
			t.Fatalf("re-encoded Parse decodes to %+v (%v), want %+v", got, err, want)
		}
	})
}

func FuzzBind(f *testing.F) {
	seedBodies(f,
		&pgproto3.Bind{DestinationPortal: "p", PreparedStatement: "s1", ParameterFormatCodes: []int16{1}, Parameters: [][]byte{{0, 0, 0, 1}, nil}, ResultFormatCodes: []int16{0}},
		&pgproto3.Bind{})
	f.Fuzz(func(t *testing.T, body []byte) {
		var m pgmsg.BindMsg
		var want pgproto3.Bind
		if !agree(t, body, m.Decode(body), want.Decode(body)) {
			return
		}
		if string(m.Portal) != want.DestinationPortal || string(m.Statement) != want.PreparedStatement || m.NumParams != len(want.Parameters) {
			t.Fatalf("pgmsg %+v, pgproto3 %+v", m, want)
		}
		out := pgmsg.SpliceBindStatement(nil, body, m.PortalEnd, m.StatementEnd, "pgone_y")
		var got pgproto3.Bind
		if err := got.Decode(wire.Body(out)); err != nil {
			t.Fatalf("spliced Bind does not decode: %v", err)
		}
		if got.PreparedStatement != "pgone_y" || got.DestinationPortal != want.DestinationPortal ||
			len(got.Parameters) != len(want.Parameters) || !bytes.Equal(wire.Body(out)[m.PortalEnd+len("pgone_y")+1:], body[m.StatementEnd:]) {
			t.Fatalf("spliced Bind %+v, want %+v renamed", got, want)
		}
	})
}

func FuzzTarget(f *testing.F) {
	seedBodies(f, &pgproto3.Describe{ObjectType: 'S', Name: "s1"}, &pgproto3.Close{ObjectType: 'P'})
	f.Fuzz(func(t *testing.T, body []byte) {
		var m pgmsg.TargetMsg
		var d pgproto3.Describe
		var c pgproto3.Close
		if !agree(t, body, m.Decode(body), d.Decode(body)) || !agree(t, body, m.Decode(body), c.Decode(body)) {
			return
		}
		if m.Kind != d.ObjectType || string(m.Name) != d.Name {
			t.Fatalf("pgmsg %c %q, pgproto3 %c %q", m.Kind, m.Name, d.ObjectType, d.Name)
		}
		if out := m.Encode(nil, pgmsg.Describe); !bytes.Equal(wire.Body(out), body) {
			t.Fatalf("Describe does not round-trip: %q vs %q", out, body)
		}
	})
}

func FuzzQuery(f *testing.F) {
	seedBodies(f, &pgproto3.Query{String: "select 1"}, &pgproto3.Query{})
	f.Fuzz(func(t *testing.T, body []byte) {
		var m pgmsg.QueryMsg
		var want pgproto3.Query
		if !agree(t, body, m.Decode(body), want.Decode(body)) {
			return
		}
		if string(m.Text) != want.String || !bytes.Equal(wire.Body(m.Encode(nil)), body) {
			t.Fatalf("pgmsg %q, pgproto3 %q", m.Text, want.String)
		}
	})
}

func FuzzCommandComplete(f *testing.F) {
	seedBodies(f, &pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")})
	f.Fuzz(func(t *testing.T, body []byte) {
		var m pgmsg.CommandCompleteMsg
		var want pgproto3.CommandComplete
		if !agree(t, body, m.Decode(body), want.Decode(body)) {
			return
		}
		if !bytes.Equal(m.Tag, want.CommandTag) || !bytes.Equal(wire.Body(m.Encode(nil)), body) {
			t.Fatalf("pgmsg %q, pgproto3 %q", m.Tag, want.CommandTag)
		}
	})
}

func FuzzReadyForQuery(f *testing.F) {
	seedBodies(f, &pgproto3.ReadyForQuery{TxStatus: 'I'})
	f.Fuzz(func(t *testing.T, body []byte) {
		var m pgmsg.ReadyMsg
		var want pgproto3.ReadyForQuery
		if !agree(t, body, m.Decode(body), want.Decode(body)) {
			return
		}
		if m.TxStatus != want.TxStatus || !bytes.Equal(wire.Body(m.Encode(nil)), body) {
			t.Fatalf("pgmsg %c, pgproto3 %c", m.TxStatus, want.TxStatus)
		}
	})
}

// atoi32 reads a position or line as pgproto3 does: 0 when not a number.
func atoi32(b []byte) int32 {
	n, _ := strconv.ParseInt(string(b), 10, 32)
	return int32(n)
}

func FuzzErrorResponse(f *testing.F) {
	seedBodies(f,
		&pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: "42P01", Message: "m", Position: 3, Line: 10, Where: "w"},
		&pgproto3.NoticeResponse{Severity: "NOTICE", Code: "00000", Message: "hello", UnknownFields: map[byte]string{'Z': "z"}})
	f.Fuzz(func(t *testing.T, body []byte) {
		var m pgmsg.ErrorMsg
		var w pgproto3.ErrorResponse
		if !agree(t, body, m.Decode(body), w.Decode(body)) {
			if pgmsg.ErrorCode(body) != nil || pgmsg.ErrorSeverity(body) != nil || pgmsg.IsFatal(body) {
				t.Fatalf("accessors answer for a malformed body %q", body)
			}
			return
		}
		pairs := [][2]string{
			{string(m.Severity), w.Severity}, {string(m.SeverityUnlocalized), w.SeverityUnlocalized},
			{string(m.Code), w.Code}, {string(m.Message), w.Message}, {string(m.Detail), w.Detail},
			{string(m.Hint), w.Hint}, {string(m.InternalQuery), w.InternalQuery}, {string(m.Where), w.Where},
			{string(m.Schema), w.SchemaName}, {string(m.Table), w.TableName}, {string(m.Column), w.ColumnName},
			{string(m.DataType), w.DataTypeName}, {string(m.Constraint), w.ConstraintName},
			{string(m.File), w.File}, {string(m.Routine), w.Routine},
		}
		for i, p := range pairs {
			if p[0] != p[1] {
				t.Fatalf("field %d: pgmsg %q, pgproto3 %q", i, p[0], p[1])
			}
		}
		if atoi32(m.Position) != w.Position || atoi32(m.InternalPosition) != w.InternalPosition || atoi32(m.Line) != w.Line {
			t.Fatalf("positions: pgmsg %q %q %q, pgproto3 %+v", m.Position, m.InternalPosition, m.Line, w)
		}
		if string(pgmsg.ErrorCode(body)) != w.Code {
			t.Fatalf("ErrorCode %q, pgproto3 %q", pgmsg.ErrorCode(body), w.Code)
		}
		sev := w.SeverityUnlocalized
		if sev == "" {
			sev = w.Severity
		}
		if string(pgmsg.ErrorSeverity(body)) != sev || pgmsg.IsFatal(body) != (sev == "FATAL" || sev == "PANIC") {
			t.Fatalf("ErrorSeverity %q, pgproto3 %q", pgmsg.ErrorSeverity(body), sev)
		}
		var again pgproto3.ErrorResponse
		if err := again.Decode(wire.Body(m.Encode(nil, pgmsg.ErrorResponse))); err != nil || again.Code != w.Code || again.Message != w.Message || again.Where != w.Where {
			t.Fatalf("re-encoded error decodes to %+v (%v), want %+v", again, err, w)
		}
	})
}

func FuzzDataRow(f *testing.F) {
	seedBodies(f, &pgproto3.DataRow{Values: [][]byte{[]byte("1"), nil, {}}})
	f.Fuzz(func(t *testing.T, body []byte) {
		var m pgmsg.DataRowMsg
		var want pgproto3.DataRow
		if !agree(t, body, m.Decode(body), want.Decode(body)) {
			return
		}
		if len(m.Values) != len(want.Values) {
			t.Fatalf("pgmsg %d values, pgproto3 %d", len(m.Values), len(want.Values))
		}
		for i := range m.Values {
			if !bytes.Equal(m.Values[i], want.Values[i]) || (m.Values[i] == nil) != (want.Values[i] == nil) {
				t.Fatalf("value %d: pgmsg %q, pgproto3 %q", i, m.Values[i], want.Values[i])
			}
		}
		var again pgproto3.DataRow
		if err := again.Decode(wire.Body(m.Encode(nil))); err != nil || len(again.Values) != len(want.Values) {
			t.Fatalf("re-encoded DataRow: %v", err)
		}
	})
}

func FuzzRowDescription(f *testing.F) {
	seedBodies(f, &pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("a"), DataTypeOID: 25}, {Name: []byte("b")}}})
	f.Fuzz(func(t *testing.T, body []byte) {
		var m pgmsg.RowDescriptionMsg
		var want pgproto3.RowDescription
		if !agree(t, body, m.Decode(body), want.Decode(body)) {
			return
		}
		if m.NumFields() != len(want.Fields) {
			t.Fatalf("pgmsg %d fields, pgproto3 %d", m.NumFields(), len(want.Fields))
		}
		for i, fd := range want.Fields {
			if !bytes.Equal(m.Names[i], fd.Name) {
				t.Fatalf("field %d: pgmsg %q, pgproto3 %q", i, m.Names[i], fd.Name)
			}
		}
	})
}
