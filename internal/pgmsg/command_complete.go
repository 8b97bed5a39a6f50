package pgmsg

// CommandCompleteMsg is a CommandComplete: its tag ("SELECT 3",
// "INSERT 0 1"). Decode aliases Tag to the body.
type CommandCompleteMsg struct {
	Tag []byte
}

// Decode reads a CommandComplete body: one NUL-terminated tag that ends it.
func (m *CommandCompleteMsg) Decode(body []byte) error {
	*m = CommandCompleteMsg{}
	tag, end, ok := CString(body, 0)
	if !ok || end != len(body) {
		return ErrMalformed
	}
	m.Tag = tag
	return nil
}

// Encode appends m as a CommandComplete frame.
func (m *CommandCompleteMsg) Encode(dst []byte) []byte { return AppendCommandComplete(dst, m.Tag) }

// AppendCommandComplete appends a CommandComplete frame with tag.
func AppendCommandComplete[S ~string | ~[]byte](dst []byte, tag S) []byte {
	dst, start := begin(dst, CommandComplete)
	return finish(appendCString(dst, tag), start)
}
