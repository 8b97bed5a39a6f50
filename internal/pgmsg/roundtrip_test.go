package pgmsg_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgone/pgone/internal/pgmsg"
	"github.com/pgone/pgone/internal/wire"
)

// encode returns pgproto3's frame for m.
func encode(t testing.TB, m interface{ Encode([]byte) ([]byte, error) }) []byte {
	t.Helper()
	b, err := m.Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sameFrame fails unless pgone's re-encoding equals pgproto3's frame.
func sameFrame(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: pgmsg encodes\n%q\npgproto3 encodes\n%q", what, got, want)
	}
}

// Each message decodes from pgproto3's encoding to the same fields and
// encodes back to the same bytes.
func TestRoundTripParse(t *testing.T) {
	for _, want := range []pgproto3.Parse{
		{Name: "s1", Query: "select $1::int, $2", ParameterOIDs: []uint32{23, 0}},
		{Query: "select 1"},
		{Name: "ünï", Query: ""},
	} {
		frame := encode(t, &want)
		var m pgmsg.ParseMsg
		if err := m.Decode(wire.Body(frame)); err != nil {
			t.Fatal(err)
		}
		if string(m.Name) != want.Name || string(m.Query) != want.Query || m.NumParams() != len(want.ParameterOIDs) {
			t.Fatalf("decoded %q %q %d, want %+v", m.Name, m.Query, m.NumParams(), want)
		}
		for i, oid := range want.ParameterOIDs {
			if m.ParamType(i) != oid {
				t.Fatalf("param %d: %d, want %d", i, m.ParamType(i), oid)
			}
		}
		sameFrame(t, "Parse", m.Encode(nil), frame)
		sameFrame(t, "AppendParse", pgmsg.AppendParse(nil, want.Name, want.Query, m.ParamTypes), frame)
	}
	sameFrame(t, "AppendParse without types", pgmsg.AppendParse(nil, "", "select 1", nil), encode(t, &pgproto3.Parse{Query: "select 1"}))
}

func TestRoundTripBind(t *testing.T) {
	want := pgproto3.Bind{DestinationPortal: "p1", PreparedStatement: "s1",
		ParameterFormatCodes: []int16{1, 0}, Parameters: [][]byte{{0, 0, 0, 1}, nil}, ResultFormatCodes: []int16{1}}
	frame := encode(t, &want)
	var m pgmsg.BindMsg
	if err := m.Decode(wire.Body(frame)); err != nil {
		t.Fatal(err)
	}
	if string(m.Portal) != "p1" || string(m.Statement) != "s1" || m.NumParams != 2 {
		t.Fatalf("decoded %+v", m)
	}
	out := pgmsg.SpliceBindStatement(nil, wire.Body(frame), m.PortalEnd, m.StatementEnd, "pgone_renamed")
	renamed := want
	renamed.PreparedStatement = "pgone_renamed"
	sameFrame(t, "renamed Bind", out, encode(t, &renamed))
	sameFrame(t, "same-name splice", pgmsg.SpliceBindStatement(nil, wire.Body(frame), m.PortalEnd, m.StatementEnd, m.Statement), frame)
}

func TestRoundTripTargets(t *testing.T) {
	for _, c := range []struct {
		typ   byte
		frame []byte
	}{
		{pgmsg.Describe, encode(t, &pgproto3.Describe{ObjectType: pgmsg.TargetStatement, Name: "s1"})},
		{pgmsg.Describe, encode(t, &pgproto3.Describe{ObjectType: pgmsg.TargetPortal})},
		{pgmsg.Close, encode(t, &pgproto3.Close{ObjectType: pgmsg.TargetStatement, Name: "pgone_x"})},
		{pgmsg.Close, encode(t, &pgproto3.Close{ObjectType: pgmsg.TargetPortal, Name: "p"})},
	} {
		var m pgmsg.TargetMsg
		if err := m.Decode(wire.Body(c.frame)); err != nil {
			t.Fatal(err)
		}
		if m.Kind != c.frame[5] {
			t.Fatalf("kind %c in %q", m.Kind, c.frame)
		}
		sameFrame(t, "target", m.Encode(nil, c.typ), c.frame)
		sameFrame(t, "AppendTarget", pgmsg.AppendTarget(nil, c.typ, m.Kind, string(m.Name)), c.frame)
	}
}

func TestRoundTripQueryReadyCommandComplete(t *testing.T) {
	q := encode(t, &pgproto3.Query{String: "select 1; select 2"})
	var qm pgmsg.QueryMsg
	if err := qm.Decode(wire.Body(q)); err != nil || string(qm.Text) != "select 1; select 2" {
		t.Fatalf("Query %q %v", qm.Text, err)
	}
	sameFrame(t, "Query", qm.Encode(nil), q)
	sameFrame(t, "AppendQuery", pgmsg.AppendQuery(nil, "select 1; select 2"), q)

	for _, st := range []byte{pgmsg.TxIdle, pgmsg.TxInTx, pgmsg.TxFailed} {
		z := encode(t, &pgproto3.ReadyForQuery{TxStatus: st})
		var zm pgmsg.ReadyMsg
		if err := zm.Decode(wire.Body(z)); err != nil || zm.TxStatus != st {
			t.Fatalf("ReadyForQuery %c %v", zm.TxStatus, err)
		}
		sameFrame(t, "ReadyForQuery", zm.Encode(nil), z)
	}

	c := encode(t, &pgproto3.CommandComplete{CommandTag: []byte("INSERT 0 3")})
	var cm pgmsg.CommandCompleteMsg
	if err := cm.Decode(wire.Body(c)); err != nil || string(cm.Tag) != "INSERT 0 3" {
		t.Fatalf("CommandComplete %q %v", cm.Tag, err)
	}
	sameFrame(t, "CommandComplete", cm.Encode(nil), c)
}

func TestRoundTripErrorAndNotice(t *testing.T) {
	want := pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: "42P01",
		Message: `relation "nope" does not exist`, Detail: "d", Hint: "h", Position: 15, InternalPosition: 3,
		InternalQuery: "iq", Where: "w", SchemaName: "public", TableName: "t", ColumnName: "c",
		DataTypeName: "int4", ConstraintName: "k", File: "parse_relation.c", Line: 1392, Routine: "parserOpenTable"}
	frame := encode(t, &want)
	var m pgmsg.ErrorMsg
	if err := m.Decode(wire.Body(frame)); err != nil {
		t.Fatal(err)
	}
	if string(m.Code) != want.Code || string(m.Message) != want.Message || string(m.Position) != "15" || string(m.Routine) != want.Routine {
		t.Fatalf("decoded %+v", m)
	}
	sameFrame(t, "ErrorResponse", m.Encode(nil, pgmsg.ErrorResponse), frame)
	if got := pgmsg.ErrorCode(wire.Body(frame)); string(got) != "42P01" {
		t.Fatalf("ErrorCode %q", got)
	}
	if pgmsg.IsFatal(wire.Body(frame)) {
		t.Fatal("an ERROR is not fatal")
	}

	notice := pgproto3.NoticeResponse{Severity: "WARNUNG", SeverityUnlocalized: "WARNING", Code: "01000", Message: "m"}
	nf := encode(t, &notice)
	if err := m.Decode(wire.Body(nf)); err != nil {
		t.Fatal(err)
	}
	if m.Detail != nil {
		t.Fatal("Decode did not reset the receiver")
	}
	sameFrame(t, "NoticeResponse", m.Encode(nil, pgmsg.NoticeResponse), nf)
	if got := pgmsg.ErrorSeverity(wire.Body(nf)); string(got) != "WARNING" {
		t.Fatalf("ErrorSeverity %q, want the unlocalized WARNING", got)
	}
	fatal := encode(t, &pgproto3.ErrorResponse{Severity: "FATAL", Code: "57P01", Message: "bye"})
	if !pgmsg.IsFatal(wire.Body(fatal)) {
		t.Fatal("FATAL without V is fatal")
	}
}

func TestRoundTripRows(t *testing.T) {
	rd := pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{
		{Name: []byte("a"), DataTypeOID: 25, DataTypeSize: -1, TypeModifier: -1},
		{Name: []byte("bee"), DataTypeOID: 25, DataTypeSize: -1, TypeModifier: -1},
	}}
	frame := encode(t, &rd)
	var m pgmsg.RowDescriptionMsg
	if err := m.Decode(wire.Body(frame)); err != nil || m.NumFields() != 2 || string(m.Names[1]) != "bee" {
		t.Fatalf("RowDescription %q %v", m.Names, err)
	}
	sameFrame(t, "AppendTextRowDescription", pgmsg.AppendTextRowDescription(nil, []string{"a", "bee"}), frame)

	dr := pgproto3.DataRow{Values: [][]byte{[]byte("1"), nil, {}}}
	df := encode(t, &dr)
	var d pgmsg.DataRowMsg
	if err := d.Decode(wire.Body(df)); err != nil || len(d.Values) != 3 || d.Values[1] != nil || d.Values[2] == nil {
		t.Fatalf("DataRow %q %v", d.Values, err)
	}
	sameFrame(t, "DataRow", d.Encode(nil), df)
	if got := pgmsg.TextValues(wire.Body(df)); len(got) != 3 || got[0] != "1" {
		t.Fatalf("TextValues %q", got)
	}
}

// The decoders pgone runs per message allocate nothing.
func TestDecodersDoNotAllocate(t *testing.T) {
	parse := wire.Body(encode(t, &pgproto3.Parse{Name: "s", Query: "select $1", ParameterOIDs: []uint32{23}}))
	bind := wire.Body(encode(t, &pgproto3.Bind{PreparedStatement: "s", Parameters: [][]byte{[]byte("1")}}))
	desc := wire.Body(encode(t, &pgproto3.Describe{ObjectType: 'S', Name: "s"}))
	errb := wire.Body(encode(t, &pgproto3.ErrorResponse{Severity: "ERROR", Code: "42P01", Message: "m"}))
	row := wire.Body(encode(t, &pgproto3.DataRow{Values: [][]byte{[]byte("1"), []byte("2")}}))
	var (
		p  pgmsg.ParseMsg
		b  pgmsg.BindMsg
		tg pgmsg.TargetMsg
		e  pgmsg.ErrorMsg
		d  pgmsg.DataRowMsg
	)
	_ = d.Decode(row) // sizes Values once
	allocs := testing.AllocsPerRun(100, func() {
		_ = p.Decode(parse)
		_ = b.Decode(bind)
		_ = tg.Decode(desc)
		_ = e.Decode(errb)
		_ = d.Decode(row)
		_ = pgmsg.ErrorCode(errb)
		_ = pgmsg.IsFatal(errb)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per decode round", allocs)
	}
}

func TestCancelRequestAsPgproto3(t *testing.T) {
	want := pgproto3.CancelRequest{ProcessID: 4242, SecretKey: []byte{1, 2, 3, 4}}
	sameFrame(t, "AppendCancelRequest", pgmsg.AppendCancelRequest(nil, want.ProcessID, want.SecretKey), encode(t, &want))
	var sr pgproto3.SSLRequest
	var gr pgproto3.GSSEncRequest
	for _, c := range []struct {
		name string
		code uint32
		msg  interface{ Encode([]byte) ([]byte, error) }
	}{{"SSLRequest", pgmsg.SSLRequestCode, &sr}, {"GSSENCRequest", pgmsg.GSSENCRequestCode, &gr}} {
		if got := encode(t, c.msg)[4:]; !bytes.Equal(got, binary.BigEndian.AppendUint32(nil, c.code)) {
			t.Errorf("%s code: pgproto3 sends %x, pgmsg has %d", c.name, got, c.code)
		}
	}
}
