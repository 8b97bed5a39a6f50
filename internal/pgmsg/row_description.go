package pgmsg

import (
	"bytes"
	"encoding/binary"
)

// fieldTail is the size of a RowDescription field after its name: table
// OID, attribute number, type OID, type size, type modifier, format.
const fieldTail = 18

// RowDescriptionMsg is what pgone needs of a RowDescription: the number of
// columns and their names. Decode aliases Names to the body and reuses its
// memory, as DataRowMsg does.
type RowDescriptionMsg struct {
	Names [][]byte
}

// Decode reads a RowDescription body, accepting what pgproto3 accepts.
func (m *RowDescriptionMsg) Decode(body []byte) error {
	m.Names = m.Names[:0]
	if len(body) < 2 {
		return ErrMalformed
	}
	n := int(binary.BigEndian.Uint16(body))
	rest := body[2:]
	for range n {
		i := bytes.IndexByte(rest, 0)
		if i < 0 || len(rest)-i-1 < fieldTail {
			m.Names = m.Names[:0]
			return ErrMalformed
		}
		m.Names = append(m.Names, rest[:i:i])
		rest = rest[i+1+fieldTail:]
	}
	return nil
}

// NumFields is the number of columns.
func (m *RowDescriptionMsg) NumFields() int { return len(m.Names) }

// AppendTextRowDescription appends a RowDescription of text columns named
// names (type text, no table): what pgone's own result sets (the admin
// console) send.
func AppendTextRowDescription(dst []byte, names []string) []byte {
	dst, start := begin(dst, RowDescription)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(names)))
	for _, name := range names {
		dst = appendCString(dst, name)
		dst = binary.BigEndian.AppendUint32(dst, 0)          // table OID
		dst = binary.BigEndian.AppendUint16(dst, 0)          // attribute number
		dst = binary.BigEndian.AppendUint32(dst, 25)         // type text
		dst = binary.BigEndian.AppendUint16(dst, 0xFFFF)     // size -1
		dst = binary.BigEndian.AppendUint32(dst, 0xFFFFFFFF) // modifier -1
		dst = binary.BigEndian.AppendUint16(dst, 0)          // text format
	}
	return finish(dst, start)
}
