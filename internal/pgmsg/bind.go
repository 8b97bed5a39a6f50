package pgmsg

import "encoding/binary"

// BindMsg is what pgone needs of a Bind: the portal and statement names,
// and where they end in the body, so that renaming the statement is a
// splice (SpliceBindStatement) and the parameters are never copied apart.
//
// Decode aliases the names to the body: valid as long as the frame is.
type BindMsg struct {
	Portal    []byte
	Statement []byte
	// PortalEnd is the body offset after the portal's NUL (where the
	// statement name starts); StatementEnd the one after the statement's.
	PortalEnd    int
	StatementEnd int
	// NumParams is the number of parameter values.
	NumParams int
}

// Decode reads a Bind body. It walks the format codes, parameter values
// and result formats to accept exactly what pgproto3 accepts, without
// copying them.
func (m *BindMsg) Decode(body []byte) error {
	*m = BindMsg{}
	portal, pe, ok := CString(body, 0)
	if !ok {
		return ErrMalformed
	}
	stmt, se, ok := CString(body, pe)
	if !ok {
		return ErrMalformed
	}
	rest := body[se:]
	rest, ok = skipInt16s(rest)
	if !ok || len(rest) < 2 {
		return ErrMalformed
	}
	n := int(binary.BigEndian.Uint16(rest))
	rest = rest[2:]
	for range n {
		if len(rest) < 4 {
			return ErrMalformed
		}
		size := int(int32(binary.BigEndian.Uint32(rest)))
		rest = rest[4:]
		if size == -1 {
			continue
		}
		if size < 0 || len(rest) < size {
			return ErrMalformed
		}
		rest = rest[size:]
	}
	if _, ok = skipInt16s(rest); !ok {
		return ErrMalformed
	}
	*m = BindMsg{Portal: portal, Statement: stmt, PortalEnd: pe, StatementEnd: se, NumParams: n}
	return nil
}

// skipInt16s skips an int16 count and that many int16s.
func skipInt16s(b []byte) ([]byte, bool) {
	if len(b) < 2 {
		return nil, false
	}
	n := 2 + 2*int(binary.BigEndian.Uint16(b))
	if len(b) < n {
		return nil, false
	}
	return b[n:], true
}

// SpliceBindStatement appends a Bind frame that is body (a Bind body whose
// portal ends at portalEnd and statement name at stmtEnd, see BindMsg)
// naming statement instead.
func SpliceBindStatement[S ~string | ~[]byte](dst, body []byte, portalEnd, stmtEnd int, statement S) []byte {
	dst, start := begin(dst, Bind)
	dst = append(dst, body[:portalEnd]...)
	dst = appendCString(dst, statement)
	return finish(append(dst, body[stmtEnd:]...), start)
}
