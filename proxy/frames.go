package proxy

import (
	"hash/fnv"
	"strconv"

	"github.com/pgone/pgone/internal/pgmsg"
	"github.com/pgone/pgone/internal/wire"
)

// Helpers that read and rewrite the statement names inside extended-protocol
// frames, over internal/pgmsg. Frames are whole messages: type byte, int32
// length, body. Names come back as strings (copies, safe to keep); rest
// and offsets refer to the frame.

// cstringAt returns the NUL-terminated string at off in b and the offset
// after it; ok is false when there is no terminator.
func cstringAt(b []byte, off int) (string, int, bool) {
	s, next, ok := pgmsg.CString(b, off)
	if !ok {
		return "", 0, false
	}
	return string(s), next, true
}

// serverStatementName derives the server-side name of a prepared statement
// from its text and parameter types, so every client preparing the same
// statement shares one name, and different statements never share one.
func serverStatementName(query string, paramTypes []byte) string {
	h := fnv.New64a()
	h.Write([]byte(query))
	h.Write([]byte{0})
	h.Write(paramTypes)
	return "pgone_" + strconv.FormatUint(h.Sum64(), 36)
}

// encodeParse builds a Parse frame for name.
func encodeParse(dst []byte, name, query string, rest []byte) []byte {
	return pgmsg.AppendParse(dst, name, query, rest)
}

// bindStatement returns the statement name a Bind refers to and where it
// starts and ends in the body (after the portal name).
func bindStatement(frame []byte) (portalEnd int, stmt string, stmtEnd int, ok bool) {
	var m pgmsg.BindMsg
	if m.Decode(wire.Body(frame)) != nil {
		return 0, "", 0, false
	}
	return m.PortalEnd, string(m.Statement), m.StatementEnd, true
}

// rewriteBind returns a Bind frame naming statement instead of the client's.
func rewriteBind(dst, frame []byte, portalEnd, stmtEnd int, statement string) []byte {
	return pgmsg.SpliceBindStatement(dst, wire.Body(frame), portalEnd, stmtEnd, statement)
}

// targetOf decodes the kind (pgmsg.TargetStatement or TargetPortal) and
// name of a Describe or Close frame.
func targetOf(frame []byte) (kind byte, name string, ok bool) {
	var m pgmsg.TargetMsg
	if m.Decode(wire.Body(frame)) != nil {
		return 0, "", false
	}
	return m.Kind, string(m.Name), true
}

// encodeTarget builds a Describe or Close frame (typ pgmsg.Describe or
// pgmsg.Close).
func encodeTarget(dst []byte, typ, kind byte, name string) []byte {
	return pgmsg.AppendTarget(dst, typ, kind, name)
}

// decodeError decodes an ErrorResponse or NoticeResponse frame; the
// fields alias the frame.
func decodeError(frame []byte) (pgmsg.ErrorMsg, bool) {
	var er pgmsg.ErrorMsg
	if er.Decode(wire.Body(frame)) != nil {
		return er, false
	}
	return er, true
}

// encodeQuery builds a simple Query frame.
func encodeQuery(dst []byte, sql string) []byte {
	return pgmsg.AppendQuery(dst, sql)
}
