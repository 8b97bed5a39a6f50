package pgmsg

import (
	"bytes"
	"encoding/binary"
	"errors"
)

// ErrMalformed is what every Decode returns for a body its message cannot
// have. It is one value, so a failed decode allocates nothing.
var ErrMalformed = errors.New("pgmsg: malformed message")

// CString returns the NUL-terminated string at off in b, aliasing b, and
// the offset after its NUL; ok is false when there is no terminator.
func CString(b []byte, off int) (s []byte, next int, ok bool) {
	if off < 0 || off > len(b) {
		return nil, 0, false
	}
	i := bytes.IndexByte(b[off:], 0)
	if i < 0 {
		return nil, 0, false
	}
	return b[off : off+i], off + i + 1, true
}

// begin appends a frame header of type typ with a length to be filled in
// by finish, and returns where the frame starts.
func begin(dst []byte, typ byte) ([]byte, int) {
	return append(dst, typ, 0, 0, 0, 0), len(dst)
}

// finish writes the length of the frame that starts at start.
func finish(dst []byte, start int) []byte {
	binary.BigEndian.PutUint32(dst[start+1:], uint32(len(dst)-start-1))
	return dst
}

// appendCString appends s and its NUL.
func appendCString[S ~string | ~[]byte](dst []byte, s S) []byte {
	return append(append(dst, s...), 0)
}
