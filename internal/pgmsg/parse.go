package pgmsg

import "encoding/binary"

// ParseMsg is a Parse: prepare Query as the statement Name.
//
// Decode aliases its fields to the body: they are valid as long as the
// frame is, and must be copied (string(...)) to be kept.
type ParseMsg struct {
	Name  []byte
	Query []byte
	// ParamTypes is the rest of the body: the int16 count and the
	// parameter type OIDs. Decode checks that they are all there; bytes
	// after them (which PostgreSQL rejects) are kept, so a frame re-encodes
	// as it came.
	ParamTypes []byte
}

// Decode reads a Parse body, accepting exactly what pgproto3 accepts.
func (m *ParseMsg) Decode(body []byte) error {
	*m = ParseMsg{}
	name, off, ok := CString(body, 0)
	if !ok {
		return ErrMalformed
	}
	query, off, ok := CString(body, off)
	if !ok {
		return ErrMalformed
	}
	types := body[off:]
	if len(types) < 2 || len(types)-2 < 4*int(binary.BigEndian.Uint16(types)) {
		return ErrMalformed
	}
	*m = ParseMsg{Name: name, Query: query, ParamTypes: types}
	return nil
}

// NumParams is the number of parameter types.
func (m *ParseMsg) NumParams() int { return int(binary.BigEndian.Uint16(m.ParamTypes)) }

// ParamType is the OID of parameter i (0 means unspecified).
func (m *ParseMsg) ParamType(i int) uint32 {
	return binary.BigEndian.Uint32(m.ParamTypes[2+4*i:])
}

// Encode appends m as a Parse frame.
func (m *ParseMsg) Encode(dst []byte) []byte {
	return AppendParse(dst, m.Name, m.Query, m.ParamTypes)
}

// AppendParse appends a Parse frame; paramTypes is the raw count and OIDs
// (ParseMsg.ParamTypes), or nil for none.
func AppendParse[S ~string | ~[]byte](dst []byte, name, query S, paramTypes []byte) []byte {
	dst, start := begin(dst, Parse)
	dst = appendCString(dst, name)
	dst = appendCString(dst, query)
	if len(paramTypes) == 0 {
		dst = append(dst, 0, 0)
	}
	return finish(append(dst, paramTypes...), start)
}
