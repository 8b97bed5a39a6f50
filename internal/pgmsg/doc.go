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
// Decoders read a frame (type byte, int32 length, body) without copying
// where they can; what they return may alias the frame and is valid only as
// long as the frame is. pgproto3 is the oracle in this package's tests.
// The package imports nothing of pgone's and is safe for concurrent use
// (it has no state).
package pgmsg
