package pgmsg

// TargetMsg is a Describe or a Close: which kind of object (TargetStatement
// or TargetPortal) and its name. Decode aliases Name to the body.
type TargetMsg struct {
	Kind byte
	Name []byte
}

// Decode reads a Describe or Close body: a kind byte and one NUL-terminated
// name that ends the body. Like pgproto3 it does not check the kind.
func (m *TargetMsg) Decode(body []byte) error {
	*m = TargetMsg{}
	if len(body) < 2 {
		return ErrMalformed
	}
	name, end, ok := CString(body, 1)
	if !ok || end != len(body) {
		return ErrMalformed
	}
	*m = TargetMsg{Kind: body[0], Name: name}
	return nil
}

// Encode appends m as a frame of type typ (Describe or Close).
func (m *TargetMsg) Encode(dst []byte, typ byte) []byte {
	return AppendTarget(dst, typ, m.Kind, m.Name)
}

// AppendTarget appends a Describe or Close frame (typ) of object kind and
// name.
func AppendTarget[S ~string | ~[]byte](dst []byte, typ, kind byte, name S) []byte {
	dst, start := begin(dst, typ)
	dst = append(dst, kind)
	return finish(appendCString(dst, name), start)
}
