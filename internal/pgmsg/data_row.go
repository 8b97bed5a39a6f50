package pgmsg

import "encoding/binary"

// DataRowMsg is a DataRow: one value per column, nil for NULL. Decode
// aliases each value to the body (valid as long as the frame is) and
// reuses Values' memory, so decoding rows into one DataRowMsg allocates
// only when a row is wider than any before.
type DataRowMsg struct {
	Values [][]byte
}

// Decode reads a DataRow body, accepting what pgproto3 accepts (bytes after
// the last value are ignored).
func (m *DataRowMsg) Decode(body []byte) error {
	m.Values = m.Values[:0]
	if len(body) < 2 {
		return ErrMalformed
	}
	n := int(binary.BigEndian.Uint16(body))
	rest := body[2:]
	for range n {
		if len(rest) < 4 {
			m.Values = m.Values[:0]
			return ErrMalformed
		}
		size := int(int32(binary.BigEndian.Uint32(rest)))
		rest = rest[4:]
		if size == -1 {
			m.Values = append(m.Values, nil)
			continue
		}
		if size < 0 || len(rest) < size {
			m.Values = m.Values[:0]
			return ErrMalformed
		}
		m.Values = append(m.Values, rest[:size:size])
		rest = rest[size:]
	}
	return nil
}

// Encode appends m as a DataRow frame.
func (m *DataRowMsg) Encode(dst []byte) []byte {
	dst, start := begin(dst, DataRow)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(m.Values)))
	for _, v := range m.Values {
		if v == nil {
			dst = binary.BigEndian.AppendUint32(dst, 0xFFFFFFFF)
			continue
		}
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(v)))
		dst = append(dst, v...)
	}
	return finish(dst, start)
}

// TextValues returns the values of a text-format DataRow as strings
// (copies; NULL is ""), or nil if the body is malformed. For the pool's own
// queries, which keep the values.
func TextValues(body []byte) []string {
	var m DataRowMsg
	if m.Decode(body) != nil {
		return nil
	}
	row := make([]string, len(m.Values))
	for i, v := range m.Values {
		row[i] = string(v)
	}
	return row
}
