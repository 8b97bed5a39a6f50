package auth

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"strconv"

	"github.com/jackc/pgx/v5/pgproto3"
	"golang.org/x/text/secure/precis"

	"github.com/pgone/pgone/pgerr"
)

// scramMechanism is the only SASL mechanism offered: -PLUS binds to the TLS
// channel, which this package does not see.
const scramMechanism = "SCRAM-SHA-256"

// scramServerNonceLen is PostgreSQL's SCRAM_RAW_NONCE_LEN.
const scramServerNonceLen = 18

// scramVerifier is what pg_authid stores for a SCRAM user: enough to check
// a proof and sign the answer, not enough to log in elsewhere.
type scramVerifier struct {
	salt       []byte
	iterations int
	storedKey  []byte
	serverKey  []byte
}

// newSCRAMVerifier derives the stored keys from a password as PostgreSQL's
// scram_build_secret does.
func newSCRAMVerifier(password string, salt []byte, iterations int) (*scramVerifier, error) {
	salted, err := pbkdf2.Key(sha256.New, saslPrep(password), salt, iterations, scramKeyLen)
	if err != nil {
		return nil, err
	}
	clientKey := hmacSHA256(salted, []byte("Client Key"))
	stored := sha256.Sum256(clientKey)
	return &scramVerifier{
		salt:       salt,
		iterations: iterations,
		storedKey:  stored[:],
		serverKey:  hmacSHA256(salted, []byte("Server Key")),
	}, nil
}

// matchesPassword serves the cleartext method for SCRAM-stored users: it
// rederives both keys from the password and compares in constant time.
func (v *scramVerifier) matchesPassword(password string) bool {
	other, err := newSCRAMVerifier(password, v.salt, v.iterations)
	if err != nil {
		return false
	}
	stored := subtle.ConstantTimeCompare(other.storedKey, v.storedKey)
	server := subtle.ConstantTimeCompare(other.serverKey, v.serverKey)
	return stored&server == 1
}

// verifyProof returns the ClientKey proof shows knowledge of, or nil when
// it shows none: ClientKey = proof XOR HMAC(StoredKey, AuthMessage), and
// SHA256(ClientKey) must be StoredKey. The key is what SCRAM passthrough
// logs in to servers with.
func (v *scramVerifier) verifyProof(authMessage string, proof []byte) []byte {
	if len(proof) != scramKeyLen {
		return nil
	}
	signature := hmacSHA256(v.storedKey, []byte(authMessage))
	clientKey := make([]byte, scramKeyLen)
	subtle.XORBytes(clientKey, proof, signature)
	sum := sha256.Sum256(clientKey)
	if subtle.ConstantTimeCompare(sum[:], v.storedKey) != 1 {
		return nil
	}
	return clientKey
}

// SCRAMKeys are what a SCRAM login gives pgone beyond "yes": the client's
// ClientKey, recovered from its proof, and the verifier's ServerKey. With
// them pgone can log in as that user to a server storing the same
// verifier, without the password (SCRAM passthrough, as PgBouncer does).
type SCRAMKeys struct {
	ClientKey []byte
	ServerKey []byte
}

// serverSignature proves to the client that pgone knows the ServerKey.
func (v *scramVerifier) serverSignature(authMessage string) string {
	return base64.StdEncoding.EncodeToString(hmacSHA256(v.serverKey, []byte(authMessage)))
}

// scramExchange runs SCRAM-SHA-256 against v. When doomed (unknown user or a
// secret without a verifier) the exchange runs in full and then fails, so it
// looks like a wrong password.
func scramExchange(c Conn, user string, v *scramVerifier, doomed bool) (*SCRAMKeys, error) {
	if err := c.Send(&pgproto3.AuthenticationSASL{AuthMechanisms: []string{scramMechanism}}); err != nil {
		return nil, err
	}
	body, err := c.ReceivePassword()
	if err != nil {
		return nil, err
	}
	mechanism, data, err := parseSASLInitialResponse(body)
	if err != nil {
		return nil, err
	}
	if mechanism != scramMechanism {
		return nil, pgerr.Fatal(pgerr.ProtocolViolation, "client selected an invalid SASL authentication mechanism")
	}
	first, err := parseClientFirst(data)
	if err != nil {
		return nil, err
	}

	serverNonce := make([]byte, scramServerNonceLen)
	rand.Read(serverNonce)
	nonce := first.nonce + base64.StdEncoding.EncodeToString(serverNonce)
	serverFirst := "r=" + nonce +
		",s=" + base64.StdEncoding.EncodeToString(v.salt) +
		",i=" + strconv.Itoa(v.iterations)
	if err := c.Send(&pgproto3.AuthenticationSASLContinue{Data: []byte(serverFirst)}); err != nil {
		return nil, err
	}

	body, err = c.ReceivePassword()
	if err != nil {
		return nil, err
	}
	final, err := parseClientFinal(body)
	if err != nil {
		return nil, err
	}
	if final.channelBinding != base64.StdEncoding.EncodeToString([]byte(first.gs2Header)) {
		return nil, pgerr.Fatal(pgerr.ProtocolViolation, "unexpected SCRAM channel-binding attribute in client-final-message")
	}
	if final.nonce != nonce {
		return nil, pgerr.Fatal(pgerr.ProtocolViolation, "invalid SCRAM response").WithDetail("Nonce does not match.")
	}

	authMessage := first.bare + "," + serverFirst + "," + final.withoutProof
	clientKey := v.verifyProof(authMessage, final.proof)
	if clientKey == nil || doomed {
		return nil, authFailed(user)
	}
	if err := c.Send(&pgproto3.AuthenticationSASLFinal{Data: []byte("v=" + v.serverSignature(authMessage))}); err != nil {
		return nil, err
	}
	return &SCRAMKeys{ClientKey: clientKey, ServerKey: v.serverKey}, nil
}

// saslPrep normalizes a password as clients do before SCRAM (RFC 4013, via
// its successor PRECIS OpaqueString, as pgx does). Like PostgreSQL, a
// password that cannot be normalized is used as is.
func saslPrep(password string) string {
	normalized, err := precis.OpaqueString.String(password)
	if err != nil {
		return password
	}
	return normalized
}

func hmacSHA256(key, msg []byte) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write(msg)
	return mac.Sum(nil)
}
