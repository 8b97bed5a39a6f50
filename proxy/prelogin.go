package proxy

import (
	"errors"

	"github.com/pgone/pgone/internal/wire"
	"github.com/pgone/pgone/pgerr"
)

// maxAuthMessage bounds the body of a password, SASLInitialResponse or
// SASLResponse message, as PostgreSQL's PG_MAX_AUTH_TOKEN_LENGTH does
// (src/include/libpq/auth.h): before authentication a client may not make
// pgone read or allocate more than this per message, whatever
// max_message_size says for logged-in clients.
const maxAuthMessage = 65535

// errTooManyLogins refuses a connection beyond max_logins_in_progress.
var errTooManyLogins = pgerr.Fatal(pgerr.TooManyConnections,
	"sorry, too many clients are logging in already (max_logins_in_progress)")

// logIn runs startup and authentication, counted in Server.loggingIn while
// they last. Beyond max_logins_in_progress it refuses the connection, so
// that unauthenticated sockets, which each hold at most a startup packet
// and an authentication message, cannot exhaust pgone's memory.
func (ss *session) logIn(snap *snapshot) (*startupRequest, error) {
	if ss.srv.loggingIn.Add(1) > int64(snap.cfg.Limits.MaxLoginsInProgress) {
		ss.srv.loggingIn.Add(-1)
		return nil, errTooManyLogins
	}
	defer ss.srv.loggingIn.Add(-1)
	req, err := ss.startup(snap)
	if err != nil {
		return nil, err
	}
	return req, ss.login(snap, req)
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
