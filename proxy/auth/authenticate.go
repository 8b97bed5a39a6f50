package auth

import (
	"crypto/rand"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgone/pgone/pgerr"
)

// Conn is what an exchange needs from the client connection; the proxy
// adapts its pgproto3.Backend to it.
type Conn interface {
	// Send encodes, writes and flushes msg.
	Send(msg pgproto3.BackendMessage) error
	// ReceivePassword returns the body of the next client message, which
	// must be a pgmsg.PasswordMessage, and an error otherwise. The body may be reused
	// by the next call.
	ReceivePassword() ([]byte, error)
}

// Authenticator runs exchanges. Its random key derives the mock salt shown
// to unknown users, so that salt is stable per name and unknown users cannot
// be told apart from known ones.
type Authenticator struct {
	mockKey [32]byte
}

// NewAuthenticator makes an Authenticator with a fresh mock key.
func NewAuthenticator() *Authenticator {
	a := &Authenticator{}
	rand.Read(a.mockKey[:])
	return a
}

// Authenticate runs one exchange for user with method; sec is nil when the
// user is unknown, and the exchange then runs in full and fails. It returns
// nil on success, leaving AuthenticationOk to the caller, a *pgerr.Error on
// failure, or the Conn's I/O error as is.
func (a *Authenticator) Authenticate(c Conn, method Method, user string, sec *Secret) error {
	_, err := a.AuthenticateKeys(c, method, user, sec)
	return err
}

// AuthenticateKeys is Authenticate that also returns the SCRAM keys of a
// successful SCRAM exchange against a stored verifier (nil otherwise), for
// logging in to servers as the client without its password.
func (a *Authenticator) AuthenticateKeys(c Conn, method Method, user string, sec *Secret) (*SCRAMKeys, error) {
	switch method {
	case Trust:
		if sec == nil {
			return nil, authFailed(user)
		}
		return nil, nil
	case Password:
		return nil, passwordExchange(c, user, sec)
	case MD5:
		if sec != nil && sec.md5 == "" && sec.scram != nil {
			// As PostgreSQL: md5 in the config, a SCRAM verifier stored: use SCRAM.
			return scramExchange(c, user, sec.scram, false)
		}
		if sec == nil {
			return nil, md5Exchange(c, user, "")
		}
		return nil, md5Exchange(c, user, sec.md5)
	case SCRAM:
		switch {
		case sec != nil && sec.scram != nil:
			return scramExchange(c, user, sec.scram, false)
		case sec != nil && sec.md5 != "":
			// PostgreSQL falls back to md5 for users stored as md5 hashes.
			return nil, md5Exchange(c, user, sec.md5)
		}
		return scramExchange(c, user, a.mockVerifier(user), true)
	}
	return nil, pgerr.Fatal(pgerr.InternalError, "authentication method %q is not supported", string(method))
}

// mockVerifier stands in for a missing verifier. Its salt is HMAC(key, user)
// so repeated attempts for one name see the same salt, as for a real user;
// its keys are random and never match.
func (a *Authenticator) mockVerifier(user string) *scramVerifier {
	salt := hmacSHA256(a.mockKey[:], []byte(user))[:scramSaltLen]
	stored := make([]byte, scramKeyLen)
	server := make([]byte, scramKeyLen)
	rand.Read(stored)
	rand.Read(server)
	return &scramVerifier{salt: salt, iterations: scramIterations, storedKey: stored, serverKey: server}
}

// authFailed is the one error for every failed login, whatever the cause,
// with PostgreSQL's text, so the reply does not reveal whether user exists.
func authFailed(user string) error {
	return pgerr.Fatal(pgerr.InvalidPassword, "password authentication failed for user %q", user)
}
