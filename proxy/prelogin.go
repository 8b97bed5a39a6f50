package proxy

import (
	"errors"
	"sync"

	"github.com/pgone/pgone/internal/wire"
	"github.com/pgone/pgone/pgerr"
)

// maxAuthMessage bounds the body of a password, SASLInitialResponse or
// SASLResponse message, as PostgreSQL's PG_MAX_AUTH_TOKEN_LENGTH does
// (src/include/libpq/auth.h): before authentication a client may not make
// pgone read or allocate more than this per message, whatever
// max_message_size says for logged-in clients.
const maxAuthMessage = 65535

// beginLogin counts a connection that has not finished startup and
// authentication. Beyond limit it refuses it, so that unauthenticated
// sockets, which each hold at most a startup packet and an authentication
// message, cannot exhaust pgone's memory. done ends the count; it may be
// called more than once.
func (s *Server) beginLogin(limit int) (done func(), err error) {
	if s.loggingIn.Add(1) > int64(limit) {
		s.loggingIn.Add(-1)
		return nil, pgerr.Fatal(pgerr.TooManyConnections,
			"sorry, too many clients are logging in already (max_logins_in_progress)")
	}
	var once sync.Once
	return func() { once.Do(func() { s.loggingIn.Add(-1) }) }, nil
}

// authReadError turns a framing error of an authentication message into
// the error the client gets.
func authReadError(err error) error {
	var tl *wire.TooLargeError
	if errors.As(err, &tl) {
		return pgerr.Fatal(pgerr.ProtocolViolation,
			"invalid authentication message length: %d bytes exceeds %d", tl.Len, tl.Max)
	}
	return clientReadError(err)
}
