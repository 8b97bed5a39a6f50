package proxy

import (
	"encoding/binary"
	"hash/fnv"
	"strconv"

	"github.com/pgone/pgone/internal/wire"
)

// Helpers that read and rewrite the statement names inside extended-protocol
// frames. Frames are whole messages: type byte, int32 length, body.

// cstringAt returns the NUL-terminated string at off in b and the offset
// after it; ok is false when there is no terminator.
func cstringAt(b []byte, off int) (string, int, bool) {
	for i := off; i < len(b); i++ {
		if b[i] == 0 {
			return string(b[off:i]), i + 1, true
		}
	}
	return "", 0, false
}

// frameWithString returns a new frame of type typ whose body is
// prefix + name + NUL + rest.
func frameWithString(dst []byte, typ byte, prefix []byte, name string, rest []byte) []byte {
	n := 4 + len(prefix) + len(name) + 1 + len(rest)
	dst = append(dst, typ)
	dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	dst = append(dst, prefix...)
	dst = append(dst, name...)
	dst = append(dst, 0)
	return append(dst, rest...)
}

// parseFrame is what pgone needs from a Parse message.
type parseFrame struct {
	name  string
	query string
	rest  []byte // after the query's NUL: parameter type count and OIDs
}

func decodeParse(frame []byte) (parseFrame, bool) {
	body := wire.Body(frame)
	name, off, ok := cstringAt(body, 0)
	if !ok {
		return parseFrame{}, false
	}
	query, off2, ok := cstringAt(body, off)
	if !ok {
		return parseFrame{}, false
	}
	return parseFrame{name: name, query: query, rest: body[off2:]}, true
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
	n := 4 + len(name) + 1 + len(query) + 1 + len(rest)
	dst = append(dst, 'P')
	dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	dst = append(dst, name...)
	dst = append(dst, 0)
	dst = append(dst, query...)
	dst = append(dst, 0)
	return append(dst, rest...)
}

// bindStatement returns the statement name a Bind refers to and where it
// starts and ends in the body (after the portal name).
func bindStatement(frame []byte) (portalEnd int, stmt string, stmtEnd int, ok bool) {
	body := wire.Body(frame)
	_, pe, ok := cstringAt(body, 0)
	if !ok {
		return 0, "", 0, false
	}
	s, se, ok := cstringAt(body, pe)
	if !ok {
		return 0, "", 0, false
	}
	return pe, s, se, true
}

// rewriteBind returns a Bind frame naming statement instead of the client's.
func rewriteBind(dst, frame []byte, portalEnd, stmtEnd int, statement string) []byte {
	body := wire.Body(frame)
	return frameWithString(dst, 'B', body[:portalEnd], statement, body[stmtEnd:])
}

// targetOf decodes the 'S'/'P' kind and name of a Describe or Close frame.
func targetOf(frame []byte) (kind byte, name string, ok bool) {
	body := wire.Body(frame)
	if len(body) < 2 {
		return 0, "", false
	}
	name, end, ok := cstringAt(body, 1)
	if !ok || end != len(body) {
		return 0, "", false
	}
	return body[0], name, true
}

// encodeTarget builds a Describe or Close frame (typ 'D' or 'C').
func encodeTarget(dst []byte, typ, kind byte, name string) []byte {
	return frameWithString(dst, typ, []byte{kind}, name, nil)
}

// encodeQuery builds a simple Query frame.
func encodeQuery(dst []byte, sql string) []byte {
	return frameWithString(dst, 'Q', nil, sql, nil)
}
