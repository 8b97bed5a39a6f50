package auth

import (
	"bytes"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgone/pgone/pgerr"
)

// passwordExchange runs the cleartext method: the client sends its password
// as is, and any stored form can check it.
func passwordExchange(c Conn, user string, sec *Secret) error {
	if err := c.Send(&pgproto3.AuthenticationCleartextPassword{}); err != nil {
		return err
	}
	password, err := receivePassword(c)
	if err != nil {
		return err
	}
	if sec == nil || !sec.verifyPassword(user, password) {
		return authFailed(user)
	}
	return nil
}

// md5Exchange runs the md5 method against hash ("md5" + 32 hex). An empty
// hash (unknown user, or a secret with no md5 form) runs the exchange and
// fails, like a wrong password.
func md5Exchange(c Conn, user, hash string) error {
	var salt [4]byte
	rand.Read(salt[:])
	if err := c.Send(&pgproto3.AuthenticationMD5Password{Salt: salt}); err != nil {
		return err
	}
	response, err := receivePassword(c)
	if err != nil {
		return err
	}
	if hash == "" || !equalStrings(response, md5Response(hash, salt)) {
		return authFailed(user)
	}
	return nil
}

// md5Response is what a client that knows the password answers to salt:
// "md5" + hex(md5(hex(md5(password+user)) + salt)). The stored hash is all it
// takes, which is why md5 hashes are password equivalents.
func md5Response(hash string, salt [4]byte) string {
	h := md5.New()
	h.Write([]byte(hash[len(md5Prefix):]))
	h.Write(salt[:])
	return md5Prefix + hex.EncodeToString(h.Sum(nil))
}

// receivePassword reads a PasswordMessage body: one NUL-terminated string,
// checked as PostgreSQL's recv_password_packet does.
func receivePassword(c Conn) (string, error) {
	body, err := c.ReceivePassword()
	if err != nil {
		return "", err
	}
	end := bytes.IndexByte(body, 0)
	if end < 0 || end != len(body)-1 {
		return "", pgerr.Fatal(pgerr.ProtocolViolation, "invalid password packet size")
	}
	if end == 0 {
		return "", pgerr.Fatal(pgerr.ProtocolViolation, "empty password returned by client")
	}
	return string(body[:end]), nil
}
