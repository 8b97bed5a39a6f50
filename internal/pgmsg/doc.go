// Package pgmsg names the PostgreSQL protocol's message types and holds the
// decoders and encoders of the messages pgone inspects or rewrites. It is
// the one place where a message-type byte is spelled out: elsewhere code
// says pgmsg.ReadyForQuery, not 'Z'.
//
// Frontend and backend types share letters with different meanings ('D' is
// Describe from a client and DataRow from a server), so each constant's
// name says which message it is; compare a frame's type only with the
// constants of its direction.
//
// Each message pgone inspects has a type XxxMsg with Decode(body) and
// Encode, modelled on pgproto3: Decode resets its receiver first, accepts
// exactly the bodies pgproto3 accepts (fuzzed against it) and returns
// ErrMalformed otherwise. Decoders copy nothing: the []byte fields they
// fill alias the frame and are valid only as long as the frame is (a
// wire.Reader frame until the next Next); convert with string(...) to keep
// one. AppendXxx functions encode from strings or bytes without a struct.
// ErrorCode, ErrorSeverity and IsFatal read one field of an ErrorResponse
// for hot paths that need no more.
// The package imports nothing of pgone's and is safe for concurrent use
// (it has no state).
package pgmsg
