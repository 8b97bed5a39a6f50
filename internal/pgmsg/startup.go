package pgmsg

import "encoding/binary"

// Request codes: the int32 after the length of an untyped first message,
// where a StartupMessage has its protocol version.
const (
	CancelRequestCode uint32 = 80877102
	SSLRequestCode    uint32 = 80877103
	GSSENCRequestCode uint32 = 80877104
)

// AppendCancelRequest appends a CancelRequest for the backend pid with its
// secret key (4 bytes before protocol 3.2, up to 256 after), as sent on a
// connection of its own.
func AppendCancelRequest(dst []byte, pid uint32, secret []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(12+len(secret)))
	dst = binary.BigEndian.AppendUint32(dst, CancelRequestCode)
	dst = binary.BigEndian.AppendUint32(dst, pid)
	return append(dst, secret...)
}
