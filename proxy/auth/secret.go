package auth

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

const (
	scramPrefix = "SCRAM-SHA-256$"
	md5Prefix   = "md5"
	md5HexLen   = 32

	// scramIterations and scramSaltLen match PostgreSQL's defaults, so a
	// verifier pgone makes (or mocks) looks like one PostgreSQL would store.
	scramIterations = 4096
	scramSaltLen    = 16
	scramKeyLen     = sha256.Size
)

// Secret is a user's configured password in the forms pgone can verify.
// Keeping every derivable form lets one secret serve several methods.
type Secret struct {
	plaintext string         // "" unless configured in plaintext
	md5       string         // "md5" + 32 lowercase hex of md5(password+user); "" if not derivable
	scram     *scramVerifier // nil if not derivable (md5-only or empty)
}

// IsSCRAMVerifier reports whether password is a stored SCRAM verifier
// rather than plaintext or an md5 hash.
func IsSCRAMVerifier(password string) bool {
	return strings.HasPrefix(password, scramPrefix)
}

// ParseSecret turns a configured password into what pgone can verify. It
// computes the SCRAM verifier of a plaintext password here, once, so that
// logins do not pay PBKDF2. An empty password (trust users) yields a Secret
// that verifies nothing. Errors never quote the password.
func ParseSecret(user, password string) (*Secret, error) {
	switch {
	case password == "":
		return &Secret{}, nil
	case IsSCRAMVerifier(password):
		v, err := parseSCRAMVerifier(password)
		if err != nil {
			return nil, err
		}
		return &Secret{scram: v}, nil
	case looksLikeMD5(password):
		hexPart := password[len(md5Prefix):]
		if len(hexPart) != md5HexLen {
			return nil, fmt.Errorf("md5 hash must be \"md5\" followed by %d hex digits, got %d", md5HexLen, len(hexPart))
		}
		return &Secret{md5: md5Prefix + strings.ToLower(hexPart)}, nil
	}
	salt := make([]byte, scramSaltLen)
	rand.Read(salt)
	v, err := newSCRAMVerifier(password, salt, scramIterations)
	if err != nil {
		return nil, err
	}
	return &Secret{plaintext: password, md5: md5Hash(user, password), scram: v}, nil
}

// IsPlaintext reports whether a configured password is a password rather
// than an md5 hash or a SCRAM verifier (and not empty), as ParseSecret
// reads it.
func IsPlaintext(password string) bool {
	return password != "" && !IsSCRAMVerifier(password) && !looksLikeMD5(password)
}

// looksLikeMD5 reports whether password is "md5" followed only by hex
// digits: such a string is meant as a hash, and a wrong length is a typo to
// report rather than a plaintext password to accept.
func looksLikeMD5(password string) bool {
	rest, ok := strings.CutPrefix(password, md5Prefix)
	if !ok || rest == "" {
		return false
	}
	for i := 0; i < len(rest); i++ {
		if !isHexDigit(rest[i]) {
			return false
		}
	}
	return true
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// parseSCRAMVerifier reads "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>",
// the format of pg_authid.rolpassword.
func parseSCRAMVerifier(s string) (*scramVerifier, error) {
	rest := strings.TrimPrefix(s, scramPrefix)
	params, keys, ok := strings.Cut(rest, "$")
	if !ok {
		return nil, errors.New("SCRAM verifier must be SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>")
	}
	iterText, saltText, ok1 := strings.Cut(params, ":")
	storedText, serverText, ok2 := strings.Cut(keys, ":")
	if !ok1 || !ok2 {
		return nil, errors.New("SCRAM verifier must be SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>")
	}
	iterations, err := strconv.ParseInt(iterText, 10, 32)
	if err != nil || iterations <= 0 {
		return nil, errors.New("SCRAM verifier: iteration count must be a positive integer")
	}
	salt, err := base64.StdEncoding.DecodeString(saltText)
	if err != nil || len(salt) == 0 {
		return nil, errors.New("SCRAM verifier: salt is not valid base64")
	}
	stored, err := base64.StdEncoding.DecodeString(storedText)
	if err != nil || len(stored) != scramKeyLen {
		return nil, fmt.Errorf("SCRAM verifier: StoredKey must be %d bytes of base64", scramKeyLen)
	}
	server, err := base64.StdEncoding.DecodeString(serverText)
	if err != nil || len(server) != scramKeyLen {
		return nil, fmt.Errorf("SCRAM verifier: ServerKey must be %d bytes of base64", scramKeyLen)
	}
	return &scramVerifier{salt: salt, iterations: int(iterations), storedKey: stored, serverKey: server}, nil
}

// md5Hash is what PostgreSQL stores for md5 users: the user name salts the
// hash, so the same password gives different hashes for different users.
func md5Hash(user, password string) string {
	sum := md5.Sum([]byte(password + user))
	return md5Prefix + hex.EncodeToString(sum[:])
}

// verifyPassword checks a cleartext password against the strongest form the
// secret holds.
func (s *Secret) verifyPassword(user, password string) bool {
	switch {
	case s.plaintext != "":
		return equalStrings(password, s.plaintext)
	case s.scram != nil:
		return s.scram.matchesPassword(password)
	case s.md5 != "":
		return equalStrings(md5Hash(user, password), s.md5)
	}
	return false
}

// equalStrings compares in constant time, including the length: both sides
// are hashed first so a mismatch leaks neither position nor length.
func equalStrings(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}
