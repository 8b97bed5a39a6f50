package auth

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgone/pgone/pgerr"
)

// backendConn adapts a pgproto3.Backend to Conn, as the proxy does. With
// auth type SASLContinue the Backend decodes every 'p' message as a
// SASLResponse, whose Data is the raw body.
type backendConn struct {
	be   *pgproto3.Backend
	sent []string // authentication requests, for checking which exchange ran
}

func (c *backendConn) Send(msg pgproto3.BackendMessage) error {
	c.sent = append(c.sent, strings.TrimPrefix(fmt.Sprintf("%T", msg), "*pgproto3.Authentication"))
	c.be.Send(msg)
	return c.be.Flush()
}

func (c *backendConn) ReceivePassword() ([]byte, error) {
	msg, err := c.be.Receive()
	if err != nil {
		return nil, err
	}
	r, ok := msg.(*pgproto3.SASLResponse)
	if !ok {
		return nil, fmt.Errorf("expected a password message, got %T", msg)
	}
	return r.Data, nil
}

// serverResult is what the test server saw for one connection.
type serverResult struct {
	err  error
	sent []string
}

// startServer listens on 127.0.0.1 and authenticates each client with
// method against users, then answers like PostgreSQL: AuthenticationOk,
// BackendKeyData and ReadyForQuery, or the ErrorResponse.
func startServer(t *testing.T, method Method, users map[string]*Secret) (port int, results <-chan serverResult) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	a := NewAuthenticator()
	ch := make(chan serverResult, 16)
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			ch <- serve(nc, a, method, users)
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port, ch
}

func serve(nc net.Conn, a *Authenticator, method Method, users map[string]*Secret) serverResult {
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	be := pgproto3.NewBackend(nc, nc)
	var startup *pgproto3.StartupMessage
	for startup == nil {
		msg, err := be.ReceiveStartupMessage()
		if err != nil {
			return serverResult{err: err}
		}
		switch m := msg.(type) {
		case *pgproto3.StartupMessage:
			startup = m
		case *pgproto3.SSLRequest, *pgproto3.GSSEncRequest:
			nc.Write([]byte("N"))
		default:
			return serverResult{err: fmt.Errorf("unexpected %T", msg)}
		}
	}
	be.SetAuthType(pgproto3.AuthTypeSASLContinue)
	user := startup.Parameters["user"]
	c := &backendConn{be: be}
	err := a.Authenticate(c, method, user, users[user])
	if err != nil {
		be.Send(pgerr.ToResponse(err))
		be.Flush()
		return serverResult{err: err, sent: c.sent}
	}
	be.Send(&pgproto3.AuthenticationOk{})
	be.Send(&pgproto3.BackendKeyData{ProcessID: 1, SecretKey: []byte{1, 2, 3, 4}})
	be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	if err := be.Flush(); err != nil {
		return serverResult{err: err, sent: c.sent}
	}
	for {
		msg, err := be.Receive()
		if err != nil {
			return serverResult{err: fmt.Errorf("client left without Terminate: %w", err), sent: c.sent}
		}
		if _, ok := msg.(*pgproto3.Terminate); ok {
			return serverResult{sent: c.sent}
		}
	}
}

// connect logs in with pgconn and returns the login error and what the
// server saw.
func connect(t *testing.T, port int, results <-chan serverResult, user, password string) (serverResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dsn := fmt.Sprintf("host=127.0.0.1 port=%d user=%s password='%s' dbname=db sslmode=disable", port, user, password)
	conn, err := pgconn.Connect(ctx, dsn)
	if err == nil {
		conn.Close(ctx)
	}
	select {
	case r := <-results:
		return r, err
	case <-ctx.Done():
		t.Fatal("server did not finish")
	}
	return serverResult{}, nil
}

func mustSecret(t *testing.T, user, password string) *Secret {
	t.Helper()
	s, err := ParseSecret(user, password)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRealClient logs in with pgx's pgconn for every method and stored form.
func TestRealClient(t *testing.T) {
	forms := map[string]func(t *testing.T, user, pw string) *Secret{
		"plaintext": func(t *testing.T, user, pw string) *Secret { return mustSecret(t, user, pw) },
		"md5 hash":  func(t *testing.T, user, pw string) *Secret { return mustSecret(t, user, testMD5Hash(user, pw)) },
		"scram verifier": func(t *testing.T, user, pw string) *Secret {
			return mustSecret(t, user, testSCRAMVerifier(t, pw, []byte("sixteen byte slt"), 4096))
		},
	}
	cases := []struct {
		method   Method
		form     string
		exchange string // first authentication request sent, "" for none
		rightOK  bool
		wrongOK  bool
	}{
		{SCRAM, "plaintext", "SASL", true, false},
		{SCRAM, "md5 hash", "MD5Password", true, false}, // PostgreSQL's fallback
		{SCRAM, "scram verifier", "SASL", true, false},
		{MD5, "plaintext", "MD5Password", true, false},
		{MD5, "md5 hash", "MD5Password", true, false},
		{MD5, "scram verifier", "SASL", true, false}, // PostgreSQL runs SCRAM for a SCRAM-stored user
		{Password, "plaintext", "CleartextPassword", true, false},
		{Password, "md5 hash", "CleartextPassword", true, false},
		{Password, "scram verifier", "CleartextPassword", true, false},
		{Trust, "plaintext", "", true, true},
		{Trust, "md5 hash", "", true, true},
		{Trust, "scram verifier", "", true, true},
	}
	for _, c := range cases {
		t.Run(string(c.method)+"/"+c.form, func(t *testing.T) {
			const user, password = "alice", "secret"
			port, results := startServer(t, c.method, map[string]*Secret{user: forms[c.form](t, user, password)})

			check := func(pw string, wantOK bool) string {
				r, err := connect(t, port, results, user, pw)
				if len(r.sent) > 0 && r.sent[0] != c.exchange || len(r.sent) == 0 && c.exchange != "" {
					t.Errorf("password %q: server sent %v, want the %q exchange", pw, r.sent, c.exchange)
				}
				if wantOK {
					if err != nil || r.err != nil {
						t.Fatalf("password %q: client error %v, server error %v; want success", pw, err, r.err)
					}
					if c.exchange == "SASL" && r.sent[len(r.sent)-1] != "SASLFinal" {
						t.Errorf("SCRAM success without SASLFinal: %v", r.sent)
					}
					return ""
				}
				return wantAuthFailed(t, err, r, user)
			}
			check(password, c.rightOK)
			wrongMsg := check("secreT", c.wrongOK)

			r, err := connect(t, port, results, "nobody", password)
			unknownMsg := wantAuthFailed(t, err, r, "nobody")
			if wrongMsg != "" && unknownMsg != strings.Replace(wrongMsg, user, "nobody", 1) {
				t.Errorf("unknown user message %q differs from wrong password message %q", unknownMsg, wrongMsg)
			}
		})
	}
}

// wantAuthFailed checks the client got 28P01 with PostgreSQL's text and the
// server returned the matching pgerr.
func wantAuthFailed(t *testing.T, err error, r serverResult, user string) string {
	t.Helper()
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		t.Fatalf("login as %s: client error %v, want a PgError (server error %v)", user, err, r.err)
	}
	want := fmt.Sprintf("password authentication failed for user %q", user)
	if pgErr.Code != "28P01" || pgErr.Severity != "FATAL" || pgErr.Message != want {
		t.Errorf("login as %s: %s %s %q, want FATAL 28P01 %q", user, pgErr.Severity, pgErr.Code, pgErr.Message, want)
	}
	if codeOf(r.err) != pgerr.InvalidPassword {
		t.Errorf("server error %v, want 28P01", r.err)
	}
	return pgErr.Message
}

// TestRealClientUnknownUser checks every method runs its usual exchange for
// an unknown user, then fails with 28P01; trust fails without one.
func TestRealClientUnknownUser(t *testing.T) {
	for method, exchange := range map[Method][]string{
		SCRAM:    {"SASL", "SASLContinue"},
		MD5:      {"MD5Password"},
		Password: {"CleartextPassword"},
		Trust:    nil,
	} {
		t.Run(string(method), func(t *testing.T) {
			port, results := startServer(t, method, map[string]*Secret{"alice": mustSecret(t, "alice", "secret")})
			r, err := connect(t, port, results, "nobody", "secret")
			wantAuthFailed(t, err, r, "nobody")
			if strings.Join(r.sent, ",") != strings.Join(exchange, ",") {
				t.Errorf("server sent %v, want %v", r.sent, exchange)
			}
		})
	}
}

// TestRealClientPostgreSQLSecrets logs in against secrets PostgreSQL itself
// stored, and a non-ASCII password that SCRAM clients normalize (SASLprep).
func TestRealClientPostgreSQLSecrets(t *testing.T) {
	users := map[string]*Secret{
		"carol":    mustSecret(t, "carol", pgSCRAMVerifier),
		pgMD5User:  mustSecret(t, pgMD5User, pgMD5Hash),
		"nbspuser": mustSecret(t, "nbspuser", "pass\u00a0word"),
		"trusty":   mustSecret(t, "trusty", ""),
	}
	cases := []struct {
		method         Method
		user, password string
		ok             bool
	}{
		{SCRAM, "carol", pgSCRAMPassword, true},
		{SCRAM, "carol", "correct horse battery", false},
		{Password, "carol", pgSCRAMPassword, true},
		{MD5, "carol", pgSCRAMPassword, true}, // SCRAM-stored: SCRAM runs, as in PostgreSQL
		{MD5, pgMD5User, pgMD5Password, true},
		{SCRAM, pgMD5User, pgMD5Password, true},
		{Password, pgMD5User, pgMD5Password, true},
		{MD5, pgMD5User, "battery", false},
		{SCRAM, "nbspuser", "pass\u00a0word", true},
		{Password, "nbspuser", "pass\u00a0word", true},
		{MD5, "nbspuser", "pass\u00a0word", true},
		{Trust, "trusty", "anything", true},
		{SCRAM, "trusty", "anything", false},
		{Password, "trusty", "anything", false},
		{MD5, "trusty", "anything", false},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s/%s/%v", c.method, c.user, c.ok), func(t *testing.T) {
			port, results := startServer(t, c.method, users)
			r, err := connect(t, port, results, c.user, c.password)
			if c.ok {
				if err != nil || r.err != nil {
					t.Fatalf("client error %v, server error %v; want success", err, r.err)
				}
				return
			}
			wantAuthFailed(t, err, r, c.user)
		})
	}
}
