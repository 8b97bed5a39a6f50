package pgmsg

// QueryMsg is a simple Query. Decode aliases Text to the body.
type QueryMsg struct {
	Text []byte
}

// Decode reads a Query body: one NUL-terminated string that ends it.
func (m *QueryMsg) Decode(body []byte) error {
	*m = QueryMsg{}
	text, end, ok := CString(body, 0)
	if !ok || end != len(body) {
		return ErrMalformed
	}
	m.Text = text
	return nil
}

// Encode appends m as a Query frame.
func (m *QueryMsg) Encode(dst []byte) []byte { return AppendQuery(dst, m.Text) }

// AppendQuery appends a Query frame for sql.
func AppendQuery[S ~string | ~[]byte](dst []byte, sql S) []byte {
	dst, start := begin(dst, Query)
	return finish(appendCString(dst, sql), start)
}
