package auth

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"strings"

	"github.com/pgone/pgone/pgerr"
)

// clientFirst is a parsed client-first-message.
type clientFirst struct {
	gs2Header string // "n,," or "y,,": echoed, base64, in the client-final c= attribute
	bare      string // client-first-message-bare, part of the AuthMessage
	nonce     string
}

// clientFinal is a parsed client-final-message.
type clientFinal struct {
	channelBinding string // the c= value as sent (base64)
	nonce          string
	proof          []byte
	withoutProof   string // client-final-message-without-proof, part of the AuthMessage
}

// malformedSCRAM is PostgreSQL's error for a SCRAM message it cannot parse.
func malformedSCRAM(detail string) error {
	return pgerr.Fatal(pgerr.ProtocolViolation, "malformed SCRAM message").WithDetail(detail)
}

// parseSASLInitialResponse splits the body of a SASLInitialResponse:
// mechanism cstring, int32 length (-1 for none), data. The data is returned
// as a copy, since the body may be reused by the next read.
func parseSASLInitialResponse(body []byte) (mechanism string, data []byte, err error) {
	end := bytes.IndexByte(body, 0)
	if end < 0 || len(body)-end-1 < 4 {
		return "", nil, pgerr.Fatal(pgerr.ProtocolViolation, "invalid SASLInitialResponse message")
	}
	mechanism = string(body[:end])
	rest := body[end+1:]
	n := int32(binary.BigEndian.Uint32(rest))
	rest = rest[4:]
	if n == -1 && len(rest) == 0 {
		return mechanism, nil, nil
	}
	if n < 0 || int(n) != len(rest) {
		return "", nil, pgerr.Fatal(pgerr.ProtocolViolation, "invalid SASLInitialResponse message").
			WithDetail("The data length does not match the message length.")
	}
	return mechanism, bytes.Clone(rest), nil
}

// parseClientFirst parses "gs2-header client-first-message-bare" with the
// checks of PostgreSQL's read_client_first_message.
func parseClientFirst(msg []byte) (clientFirst, error) {
	s, err := scramText(msg)
	if err != nil {
		return clientFirst{}, err
	}
	flag, rest, ok := strings.Cut(s, ",")
	switch {
	case flag == "n" || flag == "y":
	case strings.HasPrefix(flag, "p="):
		return clientFirst{}, malformedSCRAM("The client selected SCRAM-SHA-256 without channel binding, but the SCRAM message includes channel binding data.")
	default:
		return clientFirst{}, malformedSCRAM("Unexpected channel-binding flag.")
	}
	if !ok {
		return clientFirst{}, malformedSCRAM("Comma expected after the channel-binding flag.")
	}
	authzid, bare, ok := strings.Cut(rest, ",")
	if strings.HasPrefix(authzid, "a=") {
		return clientFirst{}, pgerr.Fatal(pgerr.FeatureNotSupported, "client uses authorization identity, but it is not supported")
	}
	if authzid != "" || !ok {
		return clientFirst{}, malformedSCRAM("Unexpected attribute in client-first-message.")
	}

	fields := strings.Split(bare, ",")
	if strings.HasPrefix(fields[0], "m=") {
		return clientFirst{}, pgerr.Fatal(pgerr.FeatureNotSupported, "client requires an unsupported SCRAM extension")
	}
	if !strings.HasPrefix(fields[0], "n=") {
		return clientFirst{}, malformedSCRAM(`Expected attribute "n".`)
	}
	if len(fields) < 2 || !strings.HasPrefix(fields[1], "r=") {
		return clientFirst{}, malformedSCRAM(`Expected attribute "r".`)
	}
	nonce := fields[1][2:]
	if nonce == "" || !isPrintable(nonce) {
		return clientFirst{}, malformedSCRAM("The client nonce is empty or holds non-printable characters.")
	}
	for _, f := range fields[2:] {
		if !isAttribute(f) {
			return clientFirst{}, malformedSCRAM("Attribute expected, but found invalid character.")
		}
	}
	return clientFirst{gs2Header: flag + ",,", bare: bare, nonce: nonce}, nil
}

// parseClientFinal parses "c=...,r=...[,ext...],p=..." with the checks of
// PostgreSQL's read_client_final_message.
func parseClientFinal(msg []byte) (clientFinal, error) {
	s, err := scramText(msg)
	if err != nil {
		return clientFinal{}, err
	}
	fields := strings.Split(s, ",")
	if !strings.HasPrefix(fields[0], "c=") {
		return clientFinal{}, malformedSCRAM(`Expected attribute "c".`)
	}
	if len(fields) < 2 || !strings.HasPrefix(fields[1], "r=") {
		return clientFinal{}, malformedSCRAM(`Expected attribute "r".`)
	}
	// Extensions may come between r= and p=; PostgreSQL ignores them.
	p := 2
	for ; p < len(fields) && !strings.HasPrefix(fields[p], "p="); p++ {
		if !isAttribute(fields[p]) {
			return clientFinal{}, malformedSCRAM("Attribute expected, but found invalid character.")
		}
	}
	if p == len(fields) {
		return clientFinal{}, malformedSCRAM(`Expected attribute "p".`)
	}
	if p != len(fields)-1 {
		return clientFinal{}, malformedSCRAM("Garbage found at the end of client-final-message.")
	}
	proof, err := base64.StdEncoding.DecodeString(fields[p][2:])
	if err != nil || len(proof) != scramKeyLen {
		return clientFinal{}, malformedSCRAM("Malformed proof in client-final-message.")
	}
	return clientFinal{
		channelBinding: fields[0][2:],
		nonce:          fields[1][2:],
		proof:          proof,
		withoutProof:   s[:len(s)-len(fields[p])-1],
	}, nil
}

// scramText copies a SCRAM message into a string, rejecting what PostgreSQL
// rejects before parsing: an empty message or one with a NUL byte.
func scramText(msg []byte) (string, error) {
	if len(msg) == 0 {
		return "", malformedSCRAM("The message is empty.")
	}
	if bytes.IndexByte(msg, 0) >= 0 {
		return "", malformedSCRAM("Message length does not match input length.")
	}
	return string(msg), nil
}

// isAttribute reports whether f is "<letter>=<value>".
func isAttribute(f string) bool {
	if len(f) < 2 || f[1] != '=' {
		return false
	}
	c := f[0]
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// isPrintable is RFC 5802's "printable": %x21-2B / %x2D-7E, i.e. visible
// ASCII without the comma.
func isPrintable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == ',' {
			return false
		}
	}
	return true
}
