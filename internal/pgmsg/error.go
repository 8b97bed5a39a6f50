package pgmsg

// ErrorMsg holds the fields of an ErrorResponse or a NoticeResponse (the
// same body). Decode aliases every field to the body: valid as long as the
// frame is. Fields pgone does not know are skipped (PostgreSQL says a
// frontend should ignore them); a field sent twice keeps its last value.
//
// Hot paths that need only the SQLSTATE or the severity use ErrorCode and
// ErrorSeverity, which decode nothing else.
type ErrorMsg struct {
	Severity            []byte // S, localized
	SeverityUnlocalized []byte // V (PostgreSQL 9.6+)
	Code                []byte // C, the SQLSTATE
	Message             []byte // M
	Detail              []byte // D
	Hint                []byte // H
	Position            []byte // P, decimal
	InternalPosition    []byte // p, decimal
	InternalQuery       []byte // q
	Where               []byte // W
	Schema              []byte // s
	Table               []byte // t
	Column              []byte // c
	DataType            []byte // d
	Constraint          []byte // n
	File                []byte // F
	Line                []byte // L, decimal
	Routine             []byte // R
}

// field returns the field of m that key names, or nil.
func (m *ErrorMsg) field(key byte) *[]byte {
	switch key {
	case 'S':
		return &m.Severity
	case 'V':
		return &m.SeverityUnlocalized
	case 'C':
		return &m.Code
	case 'M':
		return &m.Message
	case 'D':
		return &m.Detail
	case 'H':
		return &m.Hint
	case 'P':
		return &m.Position
	case 'p':
		return &m.InternalPosition
	case 'q':
		return &m.InternalQuery
	case 'W':
		return &m.Where
	case 's':
		return &m.Schema
	case 't':
		return &m.Table
	case 'c':
		return &m.Column
	case 'd':
		return &m.DataType
	case 'n':
		return &m.Constraint
	case 'F':
		return &m.File
	case 'L':
		return &m.Line
	case 'R':
		return &m.Routine
	}
	return nil
}

// encodeOrder is the order Encode writes fields in: pgproto3's.
const encodeOrder = "SVCMDHPpqWstcdnFLR"

// Decode reads an ErrorResponse or NoticeResponse body, accepting exactly
// what pgproto3 accepts: fields up to a zero byte, each a key byte and a
// NUL-terminated value; bytes after the terminator are ignored.
func (m *ErrorMsg) Decode(body []byte) error {
	*m = ErrorMsg{}
	ok := eachErrorField(body, func(key byte, value []byte) {
		if f := m.field(key); f != nil {
			*f = value
		}
	})
	if !ok {
		*m = ErrorMsg{}
		return ErrMalformed
	}
	return nil
}

// eachErrorField calls fn for each field of an ErrorResponse body in order
// and reports whether the body is well formed.
func eachErrorField(body []byte, fn func(key byte, value []byte)) bool {
	off := 0
	for {
		if off >= len(body) {
			return false
		}
		key := body[off]
		if key == 0 {
			return true
		}
		value, next, ok := CString(body, off+1)
		if !ok {
			return false
		}
		fn(key, value)
		off = next
	}
}

// ErrorField returns the last value of field key in an ErrorResponse or
// NoticeResponse body, aliasing it; nil if the body is malformed or has no
// such field. It allocates nothing.
func ErrorField(body []byte, key byte) []byte {
	var found []byte
	if !eachErrorField(body, func(k byte, v []byte) {
		if k == key {
			found = v
		}
	}) {
		return nil
	}
	return found
}

// ErrorCode returns the SQLSTATE of an ErrorResponse or NoticeResponse
// body (see ErrorField).
func ErrorCode(body []byte) []byte { return ErrorField(body, 'C') }

// ErrorSeverity returns the severity of an ErrorResponse or NoticeResponse
// body: the unlocalized one when the server sent one (not empty), so that "FATAL" means
// FATAL whatever lc_messages is, else the localized one; nil if malformed.
func ErrorSeverity(body []byte) []byte {
	var s, v []byte
	if !eachErrorField(body, func(k byte, val []byte) {
		switch k {
		case 'S':
			s = val
		case 'V':
			v = val
		}
	}) {
		return nil
	}
	if len(v) > 0 {
		return v
	}
	return s
}

// IsFatal reports whether an ErrorResponse body has severity FATAL or
// PANIC: the server ends the connection after it.
func IsFatal(body []byte) bool {
	s := ErrorSeverity(body)
	return string(s) == "FATAL" || string(s) == "PANIC"
}

// Encode appends m as a frame of type typ (ErrorResponse or
// NoticeResponse), in pgproto3's field order, leaving out empty fields.
func (m *ErrorMsg) Encode(dst []byte, typ byte) []byte {
	dst, start := begin(dst, typ)
	for i := range len(encodeOrder) {
		key := encodeOrder[i]
		if v := *m.field(key); len(v) > 0 {
			dst = appendCString(append(dst, key), v)
		}
	}
	return finish(append(dst, 0), start)
}
