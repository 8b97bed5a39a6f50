package pool

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// passthroughPassword is what pgconn is told the password is when pgone
// logs in with SCRAM keys instead: pgconn runs the SCRAM exchange with it
// and scramPassthrough rewrites the two messages that depend on it.
const passthroughPassword = "pgone-scram-passthrough"

// usePassthrough makes pc log in with t's SCRAM keys: the ClientKey a
// client proved it holds (recovered from its proof) and the ServerKey of
// the verifier, the way PgBouncer logs in as a client whose secret is a
// SCRAM verifier. The server must store the same verifier.
func usePassthrough(pc *pgconn.Config, t Target) {
	pc.Password = passthroughPassword
	pc.AfterNetConnect = func(_ context.Context, _ *pgconn.Config, conn net.Conn) (net.Conn, error) {
		return &scramPassthrough{Conn: conn, clientKey: []byte(t.SCRAMClientKey), serverKey: []byte(t.SCRAMServerKey)}, nil
	}
}

// scramPassthrough sits between pgconn and the server (above TLS) until
// authentication ends. It replaces the client proof pgconn computed from
// passthroughPassword with one made from the real ClientKey, checks the
// server's signature against the real ServerKey, and hands pgconn the
// signature it expects for passthroughPassword. It reads exactly one frame
// at a time, so once done it holds no bytes and the raw conn can replace it.
type scramPassthrough struct {
	net.Conn
	clientKey, serverKey []byte

	wbuf        []byte // client bytes not yet a whole frame
	sentStartup bool
	clientFirst string // client-first-message-bare
	serverFirst string
	authMessage string

	rpending []byte // a (rewritten) server frame not yet read by pgconn
	done     bool   // authentication ended: pass everything through
}

var errServerSignature = errors.New("SCRAM passthrough: the server's signature does not match the stored verifier")

func (s *scramPassthrough) Write(p []byte) (int, error) {
	if s.done {
		return s.Conn.Write(p)
	}
	s.wbuf = append(s.wbuf, p...)
	var out []byte
	for {
		frame, rest, ok := s.nextClientFrame()
		if !ok {
			break
		}
		s.wbuf = rest
		f, err := s.rewriteClient(frame)
		if err != nil {
			return 0, err
		}
		out = append(out, f...)
	}
	if len(out) > 0 {
		if _, err := s.Conn.Write(out); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// nextClientFrame splits off one whole frame: the startup message has no
// type byte, every later one has.
func (s *scramPassthrough) nextClientFrame() (frame, rest []byte, ok bool) {
	off := 1
	if !s.sentStartup {
		off = 0
	}
	if len(s.wbuf) < off+4 {
		return nil, nil, false
	}
	n := off + int(binary.BigEndian.Uint32(s.wbuf[off:]))
	if len(s.wbuf) < n {
		return nil, nil, false
	}
	s.sentStartup = true
	frame = append([]byte(nil), s.wbuf[:n]...)
	return frame, s.wbuf[n:], true
}

// rewriteClient records the client-first-message and replaces the proof of
// the client-final-message.
func (s *scramPassthrough) rewriteClient(frame []byte) ([]byte, error) {
	if len(frame) < 5 || frame[0] != 'p' {
		return frame, nil
	}
	body := frame[5:]
	if s.clientFirst == "" {
		// SASLInitialResponse: mechanism\0, int32 length, client-first-message.
		i := bytes.IndexByte(body, 0)
		if i < 0 || len(body) < i+5 {
			return nil, errors.New("SCRAM passthrough: malformed SASLInitialResponse")
		}
		msg := string(body[i+5:])
		// Skip the gs2 header ("n,,", "y,," or "p=tls-server-end-point,,").
		parts := strings.SplitN(msg, ",", 3)
		if len(parts) != 3 {
			return nil, errors.New("SCRAM passthrough: malformed client-first-message")
		}
		s.clientFirst = parts[2]
		return frame, nil
	}
	final := string(body)
	i := strings.LastIndex(final, ",p=")
	if i < 0 || s.serverFirst == "" {
		return nil, errors.New("SCRAM passthrough: malformed client-final-message")
	}
	withoutProof := final[:i]
	s.authMessage = s.clientFirst + "," + s.serverFirst + "," + withoutProof
	stored := sha256.Sum256(s.clientKey)
	proof := make([]byte, sha256.Size)
	subtle.XORBytes(proof, s.clientKey, hmacSum(stored[:], s.authMessage))
	msg := withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof)
	return typedFrame('p', []byte(msg)), nil
}

func (s *scramPassthrough) Read(p []byte) (int, error) {
	if len(s.rpending) == 0 {
		if s.done {
			return s.Conn.Read(p)
		}
		frame, err := s.readServerFrame()
		if err != nil {
			return 0, err
		}
		s.rpending = frame
	}
	n := copy(p, s.rpending)
	s.rpending = s.rpending[n:]
	return n, nil
}

// readServerFrame reads one frame and rewrites AuthenticationSASLFinal.
func (s *scramPassthrough) readServerFrame() ([]byte, error) {
	head := make([]byte, 5)
	if _, err := io.ReadFull(s.Conn, head); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(head[1:]))
	if n < 4 || n > 1<<20 {
		return nil, fmt.Errorf("SCRAM passthrough: bad frame length %d", n)
	}
	frame := make([]byte, 1+n)
	copy(frame, head)
	if _, err := io.ReadFull(s.Conn, frame[5:]); err != nil {
		return nil, err
	}
	if frame[0] != 'R' || len(frame) < 9 {
		s.done = true // an error or anything unexpected: pgconn handles it
		return frame, nil
	}
	data := frame[9:]
	switch binary.BigEndian.Uint32(frame[5:9]) {
	case 0: // AuthenticationOk
		s.done = true
	case 11: // AuthenticationSASLContinue: server-first-message
		s.serverFirst = string(data)
	case 12: // AuthenticationSASLFinal: v=ServerSignature
		return s.rewriteServerFinal(string(data))
	}
	return frame, nil
}

// rewriteServerFinal checks the server's signature with the real ServerKey
// and returns the one pgconn computes from passthroughPassword.
func (s *scramPassthrough) rewriteServerFinal(final string) ([]byte, error) {
	want := base64.StdEncoding.EncodeToString(hmacSum(s.serverKey, s.authMessage))
	if !hmac.Equal([]byte(strings.TrimPrefix(final, "v=")), []byte(want)) {
		return nil, errServerSignature
	}
	salt, iterations, err := saltOf(s.serverFirst)
	if err != nil {
		return nil, err
	}
	salted, err := pbkdf2.Key(sha256.New, passthroughPassword, salt, iterations, sha256.Size)
	if err != nil {
		return nil, err
	}
	dummyServerKey := hmacSum(salted, "Server Key")
	sig := "v=" + base64.StdEncoding.EncodeToString(hmacSum(dummyServerKey, s.authMessage))
	body := binary.BigEndian.AppendUint32(nil, 12)
	return typedFrame('R', append(body, sig...)), nil
}

// saltOf reads s= and i= from a server-first-message.
func saltOf(serverFirst string) ([]byte, int, error) {
	var salt []byte
	iterations := 0
	for _, attr := range strings.Split(serverFirst, ",") {
		switch {
		case strings.HasPrefix(attr, "s="):
			salt, _ = base64.StdEncoding.DecodeString(attr[2:])
		case strings.HasPrefix(attr, "i="):
			iterations, _ = strconv.Atoi(attr[2:])
		}
	}
	if len(salt) == 0 || iterations <= 0 {
		return nil, 0, errors.New("SCRAM passthrough: malformed server-first-message")
	}
	return salt, iterations, nil
}

func typedFrame(typ byte, body []byte) []byte {
	f := []byte{typ}
	f = binary.BigEndian.AppendUint32(f, uint32(4+len(body)))
	return append(f, body...)
}

func hmacSum(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}
