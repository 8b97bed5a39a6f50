package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
)

// Stored by PostgreSQL 15 for CREATE ROLE ... PASSWORD, read from pg_authid.
const (
	pgSCRAMPassword = "correct horse"
	pgSCRAMVerifier = "SCRAM-SHA-256$4096:f5MaVoXghFDFxtG326bIng==$J15zq0ugHxNadFoA45RQdAFCCk7hUmhSVK+5zgnfp0g=:FOfzJPjWgIzHmQN7eWc4NYrReFEFtDxD5lnkLhiVHAY="
	pgMD5User       = "bob"
	pgMD5Password   = "battery staple"
	pgMD5Hash       = "md5ffb640bdd3eae857b142179f628eebd1"
)

// testSCRAMVerifier builds a pg_authid SCRAM string from the RFC 5802
// formulas, independently of the package code.
func testSCRAMVerifier(t testing.TB, password string, salt []byte, iterations int) string {
	t.Helper()
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, 32)
	if err != nil {
		t.Fatal(err)
	}
	mac := func(key []byte, msg string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	stored := sha256.Sum256(mac(salted, "Client Key"))
	b64 := base64.StdEncoding.EncodeToString
	return "SCRAM-SHA-256$" + itoa(iterations) + ":" + b64(salt) + "$" + b64(stored[:]) + ":" + b64(mac(salted, "Server Key"))
}

func itoa(n int) string {
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

// testMD5Hash is PostgreSQL's stored md5 form, computed independently.
func testMD5Hash(user, password string) string {
	sum := md5.Sum([]byte(password + user))
	return "md5" + hex.EncodeToString(sum[:])
}

func TestParseSecretPlaintext(t *testing.T) {
	s, err := ParseSecret("alice", "secret")
	if err != nil {
		t.Fatal(err)
	}
	if s.plaintext != "secret" {
		t.Errorf("plaintext = %q", s.plaintext)
	}
	if want := testMD5Hash("alice", "secret"); s.md5 != want {
		t.Errorf("md5 = %q, want %q", s.md5, want)
	}
	if s.scram == nil || s.scram.iterations != 4096 || len(s.scram.salt) != 16 {
		t.Fatalf("scram verifier = %+v, want 4096 iterations and a 16-byte salt", s.scram)
	}
	want, err := ParseSecret("alice", testSCRAMVerifier(t, "secret", s.scram.salt, 4096))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s.scram.storedKey, want.scram.storedKey) || !bytes.Equal(s.scram.serverKey, want.scram.serverKey) {
		t.Error("verifier computed from plaintext differs from the RFC 5802 derivation")
	}
	again, _ := ParseSecret("alice", "secret")
	if bytes.Equal(again.scram.salt, s.scram.salt) {
		t.Error("two parses share a salt; it must be random")
	}
	for pw, ok := range map[string]bool{"secret": true, "Secret": false, "secret ": false, "": false} {
		if got := s.verifyPassword("alice", pw); got != ok {
			t.Errorf("verifyPassword(%q) = %v, want %v", pw, got, ok)
		}
	}
}

func TestParseSecretMD5(t *testing.T) {
	s, err := ParseSecret(pgMD5User, pgMD5Hash)
	if err != nil {
		t.Fatal(err)
	}
	if s.md5 != pgMD5Hash || s.plaintext != "" || s.scram != nil {
		t.Fatalf("secret = %+v, want only the md5 hash", s)
	}
	if !s.verifyPassword(pgMD5User, pgMD5Password) {
		t.Error("PostgreSQL's md5 hash does not verify its password")
	}
	if s.verifyPassword(pgMD5User, "battery stapler") || s.verifyPassword("alice", pgMD5Password) {
		t.Error("md5 hash verifies a wrong password or another user")
	}
	upper, err := ParseSecret(pgMD5User, "md5"+strings.ToUpper(pgMD5Hash[3:]))
	if err != nil || upper.md5 != pgMD5Hash {
		t.Errorf("uppercase hex: md5 = %q, err = %v; want the lowercase hash", upper.md5, err)
	}
}

func TestParseSecretSCRAM(t *testing.T) {
	s, err := ParseSecret("carol", pgSCRAMVerifier)
	if err != nil {
		t.Fatal(err)
	}
	if s.plaintext != "" || s.md5 != "" || s.scram == nil {
		t.Fatalf("secret = %+v, want only a SCRAM verifier", s)
	}
	if s.scram.iterations != 4096 || base64.StdEncoding.EncodeToString(s.scram.salt) != "f5MaVoXghFDFxtG326bIng==" {
		t.Errorf("iterations %d salt %x", s.scram.iterations, s.scram.salt)
	}
	if !s.verifyPassword("carol", pgSCRAMPassword) {
		t.Error("PostgreSQL's SCRAM verifier does not verify its password")
	}
	if s.verifyPassword("carol", "correct horse ") {
		t.Error("SCRAM verifier verifies a wrong password")
	}
	own := testSCRAMVerifier(t, "pw", []byte("0123456789abcdef"), 5000)
	s, err = ParseSecret("x", own)
	if err != nil || s.scram.iterations != 5000 || !s.verifyPassword("x", "pw") {
		t.Errorf("own verifier: err %v, secret %+v", err, s)
	}
}

func TestParseSecretEmpty(t *testing.T) {
	s, err := ParseSecret("trusty", "")
	if err != nil || s == nil {
		t.Fatalf("ParseSecret(empty) = %v, %v; want a secret", s, err)
	}
	if s.verifyPassword("trusty", "") || s.verifyPassword("trusty", "x") {
		t.Error("an empty secret verifies a password")
	}
}

func TestParseSecretPlaintextLookalikes(t *testing.T) {
	for _, pw := range []string{"md5", "md5 is broken", "md5xyz", "SCRAM-SHA-256", "scram-sha-256$4096:x$y:z"} {
		s, err := ParseSecret("u", pw)
		if err != nil || s.plaintext != pw {
			t.Errorf("ParseSecret(%q) = %+v, %v; want plaintext", pw, s, err)
		}
	}
}

func TestParseSecretMalformed(t *testing.T) {
	key := base64.StdEncoding.EncodeToString(make([]byte, 32))
	short := base64.StdEncoding.EncodeToString(make([]byte, 31))
	cases := []struct{ password, want string }{
		{"md5" + pgMD5Hash[3:34], "32 hex digits"},
		{pgMD5Hash + "0", "32 hex digits"},
		{"md5abc", "32 hex digits"},
		{"SCRAM-SHA-256$", "SCRAM-SHA-256$<iterations>"},
		{"SCRAM-SHA-256$4096:c2FsdA==", "SCRAM-SHA-256$<iterations>"},
		{"SCRAM-SHA-256$4096$" + key + ":" + key, "SCRAM-SHA-256$<iterations>"},
		{"SCRAM-SHA-256$4096:c2FsdA==$" + key, "SCRAM-SHA-256$<iterations>"},
		{"SCRAM-SHA-256$0:c2FsdA==$" + key + ":" + key, "iteration count"},
		{"SCRAM-SHA-256$-1:c2FsdA==$" + key + ":" + key, "iteration count"},
		{"SCRAM-SHA-256$many:c2FsdA==$" + key + ":" + key, "iteration count"},
		{"SCRAM-SHA-256$4096:!!!$" + key + ":" + key, "salt"},
		{"SCRAM-SHA-256$4096:$" + key + ":" + key, "salt"},
		{"SCRAM-SHA-256$4096:c2FsdA==$" + short + ":" + key, "StoredKey"},
		{"SCRAM-SHA-256$4096:c2FsdA==$%%%:" + key, "StoredKey"},
		{"SCRAM-SHA-256$4096:c2FsdA==$" + key + ":" + short, "ServerKey"},
		{"SCRAM-SHA-256$4096:c2FsdA==$" + key + ":", "ServerKey"},
	}
	for _, c := range cases {
		s, err := ParseSecret("u", c.password)
		if err == nil {
			t.Errorf("ParseSecret(%q) = %+v, want an error", c.password, s)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseSecret(%q) error %q does not say %q", c.password, err, c.want)
		}
		if strings.Contains(err.Error(), key) || strings.Contains(err.Error(), pgMD5Hash[3:20]) {
			t.Errorf("error %q quotes secret material", err)
		}
	}
}

func TestIsSCRAMVerifier(t *testing.T) {
	for pw, want := range map[string]bool{pgSCRAMVerifier: true, "SCRAM-SHA-256$": true, pgMD5Hash: false, "secret": false, "scram-sha-256$1:a$b:c": false} {
		if got := IsSCRAMVerifier(pw); got != want {
			t.Errorf("IsSCRAMVerifier(%q) = %v", pw, got)
		}
	}
}
