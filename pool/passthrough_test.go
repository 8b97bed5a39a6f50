package pool

import (
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// TestPassthroughChecksTheServerSignature: pgone gives pgconn the server
// signature it expects only after checking the real one against the
// verifier's ServerKey, so a server that does not hold the verifier is
// not trusted.
func TestPassthroughChecksTheServerSignature(t *testing.T) {
	salt := []byte("0123456789abcdef")
	serverKey := hmacSum([]byte("real salted password"), "Server Key")
	s := &scramPassthrough{
		clientKey:   hmacSum([]byte("real salted password"), "Client Key"),
		serverKey:   serverKey,
		serverFirst: "r=abc,s=" + base64.StdEncoding.EncodeToString(salt) + ",i=4096",
		authMessage: "n=,r=abc,r=abc,s=...,i=4096,c=biws,r=abc",
	}
	if _, err := s.rewriteServerFinal("v=" + base64.StdEncoding.EncodeToString(hmacSum([]byte("other key"), s.authMessage))); !errors.Is(err, errServerSignature) {
		t.Fatalf("wrong server signature: err = %v, want errServerSignature", err)
	}
	frame, err := s.rewriteServerFinal("v=" + base64.StdEncoding.EncodeToString(hmacSum(serverKey, s.authMessage)))
	if err != nil {
		t.Fatal(err)
	}
	salted, _ := pbkdf2.Key(sha256.New, passthroughPassword, salt, 4096, sha256.Size)
	want := "v=" + base64.StdEncoding.EncodeToString(hmacSum(hmacSum(salted, "Server Key"), s.authMessage))
	if got := string(frame[9:]); got != want || frame[0] != 'R' || !strings.HasPrefix(got, "v=") {
		t.Errorf("rewritten SASLFinal = %q, want %q", got, want)
	}
}
