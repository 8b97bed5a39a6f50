package auth

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgone/pgone/pgerr"
)

// TestSCRAMRFC7677Vector checks the proof and signature math against the
// example exchange in RFC 7677 section 3.
func TestSCRAMRFC7677Vector(t *testing.T) {
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	v, err := newSCRAMVerifier("pencil", salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	const nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
	authMessage := "n=user,r=rOprNGfwEbeRWgbNEkqO," +
		"r=" + nonce + ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096," +
		"c=biws,r=" + nonce
	proof, _ := base64.StdEncoding.DecodeString("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
	if v.verifyProof(authMessage, proof) == nil {
		t.Error("RFC 7677 proof rejected")
	}
	if got := v.serverSignature(authMessage); got != "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=" {
		t.Errorf("server signature %s", got)
	}
	proof[0] ^= 1
	if v.verifyProof(authMessage, proof) != nil {
		t.Error("altered proof accepted")
	}
}

// scriptConn is a fake client: next produces each client message from what
// pgone has sent so far.
type scriptConn struct {
	sent []pgproto3.BackendMessage
	next func(sent []pgproto3.BackendMessage) ([]byte, error)
}

func (c *scriptConn) Send(msg pgproto3.BackendMessage) error {
	c.sent = append(c.sent, msg)
	return nil
}

func (c *scriptConn) ReceivePassword() ([]byte, error) { return c.next(c.sent) }

// saslInitial encodes a SASLInitialResponse body.
func saslInitial(mechanism, data string) []byte {
	b := append([]byte(mechanism), 0)
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	return append(b, data...)
}

// scramClient is an independent SCRAM client for driving the server side.
type scramClient struct {
	password, gs2, bare string
	// finalRewrite may tamper with the client-final-message-without-proof.
	finalRewrite func(withoutProof string) string
	authMessage  string
	salted       []byte
}

func (c *scramClient) script(t *testing.T) func([]pgproto3.BackendMessage) ([]byte, error) {
	return func(sent []pgproto3.BackendMessage) ([]byte, error) {
		switch m := sent[len(sent)-1].(type) {
		case *pgproto3.AuthenticationSASL:
			return saslInitial("SCRAM-SHA-256", c.gs2+c.bare), nil
		case *pgproto3.AuthenticationSASLContinue:
			serverFirst := string(m.Data)
			var nonce, saltB64, iter string
			for _, f := range strings.Split(serverFirst, ",") {
				switch f[:2] {
				case "r=":
					nonce = f[2:]
				case "s=":
					saltB64 = f[2:]
				case "i=":
					iter = f[2:]
				}
			}
			salt, err := base64.StdEncoding.DecodeString(saltB64)
			if err != nil || iter == "" {
				t.Fatalf("bad server-first-message %q", serverFirst)
			}
			n := 0
			for _, d := range iter {
				n = n*10 + int(d-'0')
			}
			c.salted, _ = pbkdf2.Key(sha256.New, c.password, salt, n, 32)
			withoutProof := "c=" + base64.StdEncoding.EncodeToString([]byte(c.gs2)) + ",r=" + nonce
			if c.finalRewrite != nil {
				withoutProof = c.finalRewrite(withoutProof)
			}
			c.authMessage = c.bare + "," + serverFirst + "," + withoutProof
			clientKey := testHMAC(c.salted, "Client Key")
			stored := sha256.Sum256(clientKey)
			sig := testHMAC(stored[:], c.authMessage)
			for i := range clientKey {
				clientKey[i] ^= sig[i]
			}
			return []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(clientKey)), nil
		}
		return nil, io.EOF
	}
}

func testHMAC(key []byte, msg string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}

func codeOf(err error) pgerr.Code {
	var pe *pgerr.Error
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func TestSCRAMExchangeScripted(t *testing.T) {
	sec, err := ParseSecret("carol", pgSCRAMVerifier)
	if err != nil {
		t.Fatal(err)
	}
	a := NewAuthenticator()
	cases := []struct {
		name    string
		client  scramClient
		user    string
		want    pgerr.Code // "" = success
		wantMsg string
	}{
		{name: "ok n", client: scramClient{password: pgSCRAMPassword, gs2: "n,,", bare: "n=,r=abc"}},
		{name: "ok y with extension and user name", client: scramClient{password: pgSCRAMPassword, gs2: "y,,", bare: "n=carol,r=abc,x=ext"}},
		{name: "ok with final extension", client: scramClient{password: pgSCRAMPassword, gs2: "n,,", bare: "n=,r=abc",
			finalRewrite: func(s string) string { return s + ",x=1" }}},
		{name: "wrong password", client: scramClient{password: "correct horse!", gs2: "n,,", bare: "n=,r=abc"},
			want: pgerr.InvalidPassword, wantMsg: `password authentication failed for user "carol"`},
		{name: "unknown user", user: "nobody", client: scramClient{password: pgSCRAMPassword, gs2: "n,,", bare: "n=,r=abc"},
			want: pgerr.InvalidPassword, wantMsg: `password authentication failed for user "nobody"`},
		{name: "nonce mismatch", client: scramClient{password: pgSCRAMPassword, gs2: "n,,", bare: "n=,r=abc",
			finalRewrite: func(s string) string { return s + "x" }}, want: pgerr.ProtocolViolation, wantMsg: "invalid SCRAM response"},
		{name: "channel binding mismatch", client: scramClient{password: pgSCRAMPassword, gs2: "n,,", bare: "n=,r=abc",
			finalRewrite: func(s string) string { return strings.Replace(s, "c=biws", "c=eSws", 1) }},
			want: pgerr.ProtocolViolation, wantMsg: "unexpected SCRAM channel-binding attribute in client-final-message"},
		{name: "channel binding PLUS", client: scramClient{password: pgSCRAMPassword, gs2: "p=tls-server-end-point,,", bare: "n=,r=abc"},
			want: pgerr.ProtocolViolation, wantMsg: "malformed SCRAM message"},
		{name: "authzid", client: scramClient{password: pgSCRAMPassword, gs2: "n,a=bob,", bare: "n=,r=abc"},
			want: pgerr.FeatureNotSupported},
		{name: "mandatory extension", client: scramClient{password: pgSCRAMPassword, gs2: "n,,", bare: "m=x,n=,r=abc"},
			want: pgerr.FeatureNotSupported},
		{name: "no nonce", client: scramClient{password: pgSCRAMPassword, gs2: "n,,", bare: "n="},
			want: pgerr.ProtocolViolation, wantMsg: "malformed SCRAM message"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			user, s := "carol", sec
			if c.user != "" {
				user, s = c.user, nil
			}
			conn := &scriptConn{next: c.client.script(t)}
			err := a.Authenticate(conn, SCRAM, user, s)
			if codeOf(err) != c.want || (err == nil) != (c.want == "") {
				t.Fatalf("err = %v, want code %q", err, c.want)
			}
			var pe *pgerr.Error
			if err != nil && errors.As(err, &pe) && c.wantMsg != "" && pe.Message != c.wantMsg {
				t.Errorf("message %q, want %q", pe.Message, c.wantMsg)
			}
			last := conn.sent[len(conn.sent)-1]
			final, isFinal := last.(*pgproto3.AuthenticationSASLFinal)
			if c.want != "" {
				if isFinal {
					t.Error("SASLFinal sent on failure")
				}
				return
			}
			if !isFinal {
				t.Fatalf("last message %T, want AuthenticationSASLFinal", last)
			}
			want := "v=" + base64.StdEncoding.EncodeToString(testHMAC(testHMAC(c.client.salted, "Server Key"), c.client.authMessage))
			if string(final.Data) != want {
				t.Errorf("server-final %q, want %q", final.Data, want)
			}
		})
	}
}

func TestSCRAMBadMechanism(t *testing.T) {
	for _, body := range [][]byte{
		saslInitial("SCRAM-SHA-256-PLUS", "p=tls-server-end-point,,n=,r=abc"),
		saslInitial("SCRAM-SHA-1", "n,,n=,r=abc"),
	} {
		conn := &scriptConn{next: func([]pgproto3.BackendMessage) ([]byte, error) { return body, nil }}
		err := NewAuthenticator().Authenticate(conn, SCRAM, "carol", nil)
		if codeOf(err) != pgerr.ProtocolViolation || !strings.Contains(err.Error(), "invalid SASL authentication mechanism") {
			t.Errorf("err = %v, want 08P01 invalid SASL mechanism", err)
		}
	}
}

// TestSCRAMMockSalt checks an unknown user sees a salt that is stable for the
// name, differs between names and Authenticators, and 4096 iterations.
func TestSCRAMMockSalt(t *testing.T) {
	serverFirst := func(a *Authenticator, user string, sec *Secret) string {
		conn := &scriptConn{next: func(sent []pgproto3.BackendMessage) ([]byte, error) {
			if _, ok := sent[len(sent)-1].(*pgproto3.AuthenticationSASL); ok {
				return saslInitial("SCRAM-SHA-256", "n,,n=,r=abc"), nil
			}
			return nil, io.ErrUnexpectedEOF
		}}
		if err := a.Authenticate(conn, SCRAM, user, sec); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("err = %v, want the Conn's error as is", err)
		}
		first := string(conn.sent[1].(*pgproto3.AuthenticationSASLContinue).Data)
		return first[strings.Index(first, ",s="):]
	}
	a := NewAuthenticator()
	s1, s2 := serverFirst(a, "ghost", nil), serverFirst(a, "ghost", nil)
	if s1 != s2 {
		t.Errorf("unknown user salt not stable: %q vs %q", s1, s2)
	}
	if !strings.HasSuffix(s1, ",i=4096") || len(s1) != len(",s=,i=4096")+24 {
		t.Errorf("mock salt/iterations %q, want a 16-byte salt and 4096", s1)
	}
	if serverFirst(a, "ghost2", nil) == s1 || serverFirst(NewAuthenticator(), "ghost", nil) == s1 {
		t.Error("mock salt does not depend on user and key")
	}
	empty, _ := ParseSecret("trusty", "")
	if serverFirst(a, "trusty", empty) != serverFirst(a, "trusty", nil) {
		t.Error("a user with an empty secret must look like an unknown user")
	}
}

func TestPasswordMessageChecks(t *testing.T) {
	sec, _ := ParseSecret("alice", "secret")
	for body, want := range map[string]pgerr.Code{
		"secret\x00":       "",
		"secret":           pgerr.ProtocolViolation,
		"sec\x00ret\x00":   pgerr.ProtocolViolation,
		"\x00":             pgerr.ProtocolViolation,
		"":                 pgerr.ProtocolViolation,
		"secreT\x00":       pgerr.InvalidPassword,
		"secret\x00\x00":   pgerr.ProtocolViolation,
		"secretsecret\x00": pgerr.InvalidPassword,
	} {
		conn := &scriptConn{next: func([]pgproto3.BackendMessage) ([]byte, error) { return []byte(body), nil }}
		err := NewAuthenticator().Authenticate(conn, Password, "alice", sec)
		if codeOf(err) != want || (err == nil) != (want == "") {
			t.Errorf("body %q: err = %v, want code %q", body, err, want)
		}
	}
}

func TestParseClientMessages(t *testing.T) {
	first, err := parseClientFirst([]byte("y,,n=bob,r=a+b/c,ext=1"))
	if err == nil {
		t.Fatalf("extension name longer than one letter accepted: %+v", first)
	}
	first, err = parseClientFirst([]byte("y,,n=bob,r=a+b/c,e=1"))
	if err != nil || first.gs2Header != "y,," || first.bare != "n=bob,r=a+b/c,e=1" || first.nonce != "a+b/c" {
		t.Errorf("parseClientFirst = %+v, %v", first, err)
	}
	for _, bad := range []string{"", "n", "n,", "n,,", "x,,n=,r=a", "n,,r=a", "n,,n=", "n,,n=,r=", "n,,n=,r=a b", "n,,n=,r=a\x00", "n,,n=,r=\x7f", "n,,n=,r=a,=x", "n,,n=,r=a,"} {
		if f, err := parseClientFirst([]byte(bad)); err == nil {
			t.Errorf("parseClientFirst(%q) = %+v, want an error", bad, f)
		}
	}
	proof := base64.StdEncoding.EncodeToString(make([]byte, 32))
	final, err := parseClientFinal([]byte("c=biws,r=abc,x=1,p=" + proof))
	if err != nil || final.channelBinding != "biws" || final.nonce != "abc" || final.withoutProof != "c=biws,r=abc,x=1" || len(final.proof) != 32 {
		t.Errorf("parseClientFinal = %+v, %v", final, err)
	}
	for _, bad := range []string{"", "c=biws", "c=biws,r=abc", "r=abc,c=biws,p=" + proof, "c=biws,r=abc,p=" + proof + ",x=1",
		"c=biws,r=abc,p=" + proof[:40], "c=biws,r=abc,p=!!", "c=biws,r=abc,1=x,p=" + proof, "c=biws,r=abc,p=" + proof + "\x00"} {
		if f, err := parseClientFinal([]byte(bad)); err == nil {
			t.Errorf("parseClientFinal(%q) = %+v, want an error", bad, f)
		}
	}
	for _, bad := range [][]byte{nil, []byte("SCRAM-SHA-256"), []byte("SCRAM-SHA-256\x00\x00\x00"),
		append([]byte("M\x00"), 0, 0, 0, 5, 'a'), append([]byte("M\x00"), 0xff, 0xff, 0xff, 0xff, 'a')} {
		if m, d, err := parseSASLInitialResponse(bad); err == nil {
			t.Errorf("parseSASLInitialResponse(%q) = %q, %q; want an error", bad, m, d)
		}
	}
	if m, d, err := parseSASLInitialResponse(append([]byte("M\x00"), 0xff, 0xff, 0xff, 0xff)); err != nil || m != "M" || d != nil {
		t.Errorf("length -1: %q, %q, %v", m, d, err)
	}
}

// FuzzSCRAMClientMessages feeds arbitrary client-first and client-final
// messages to the parsers and to a whole exchange (and the final one to the
// password exchange): nothing may panic, a parse that succeeds must describe
// its input, and no input may log in.
func FuzzSCRAMClientMessages(f *testing.F) {
	proof := base64.StdEncoding.EncodeToString(make([]byte, 32))
	f.Add([]byte("n,,n=,r=abc"), []byte("c=biws,r=abc,p="+proof))
	f.Add([]byte("y,,n=u,r=abc,x=1"), []byte("c=eSws,r=abc,x=y,p="+proof))
	f.Add([]byte("p=tls-server-end-point,,n=,r=a"), []byte("c=,r=,p="))
	f.Add([]byte("n,a=x,m=1,n=,r=\x00"), []byte(",,,,p=p=p="))
	sec, err := ParseSecret("carol", pgSCRAMVerifier)
	if err != nil {
		f.Fatal(err)
	}
	a := NewAuthenticator()
	f.Fuzz(func(t *testing.T, first, final []byte) {
		parseSASLInitialResponse(first)
		if cf, err := parseClientFirst(first); err == nil {
			if cf.gs2Header+cf.bare != string(first) || !isPrintable(cf.nonce) || cf.nonce == "" {
				t.Fatalf("parseClientFirst(%q) = %+v", first, cf)
			}
		}
		if cf, err := parseClientFinal(final); err == nil {
			if !strings.HasPrefix(string(final), cf.withoutProof+",p=") || len(cf.proof) != 32 {
				t.Fatalf("parseClientFinal(%q) = %+v", final, cf)
			}
		}
		msgs := [][]byte{saslInitial("SCRAM-SHA-256", string(first)), final}
		conn := &scriptConn{next: func([]pgproto3.BackendMessage) ([]byte, error) {
			if len(msgs) == 0 {
				return nil, io.EOF
			}
			m := msgs[0]
			msgs = msgs[1:]
			return m, nil
		}}
		err := a.Authenticate(conn, SCRAM, "carol", sec)
		if err == nil {
			t.Fatalf("arbitrary messages logged in: %q, %q", first, final)
		}
		if codeOf(err) == "" && !errors.Is(err, io.EOF) {
			t.Fatalf("error %v is neither a pgerr nor the Conn's", err)
		}
		conn = &scriptConn{next: func([]pgproto3.BackendMessage) ([]byte, error) { return final, nil }}
		if err := a.Authenticate(conn, Password, "carol", sec); err == nil {
			t.Fatalf("password message %q logged in", final)
		}
	})
}
