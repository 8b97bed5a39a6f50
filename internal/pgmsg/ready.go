package pgmsg

// ReadyMsg is a ReadyForQuery: the server's transaction status (TxIdle,
// TxInTx or TxFailed).
type ReadyMsg struct {
	TxStatus byte
}

// Decode reads a ReadyForQuery body: exactly one byte.
func (m *ReadyMsg) Decode(body []byte) error {
	*m = ReadyMsg{}
	if len(body) != 1 {
		return ErrMalformed
	}
	m.TxStatus = body[0]
	return nil
}

// Encode appends m as a ReadyForQuery frame.
func (m *ReadyMsg) Encode(dst []byte) []byte { return AppendReadyForQuery(dst, m.TxStatus) }

// AppendReadyForQuery appends a ReadyForQuery frame with status.
func AppendReadyForQuery(dst []byte, status byte) []byte {
	return append(dst, ReadyForQuery, 0, 0, 0, 5, status)
}
