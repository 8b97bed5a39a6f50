package proxy_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/md5"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/proxy"
)

// scramVerifier computes a SCRAM-SHA-256 verifier as PostgreSQL stores it,
// with the RFC 5802 formulas.
func scramVerifier(t testing.TB, password string, salt []byte, iterations int) string {
	t.Helper()
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		t.Fatal(err)
	}
	mac := func(key []byte, msg string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	clientKey := mac(salted, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	serverKey := mac(salted, "Server Key")
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, b64(salt), b64(storedKey[:]), b64(serverKey))
}

// md5Secret is the md5 form PostgreSQL stores: "md5" + hex(md5(password + user)).
func md5Secret(user, password string) string {
	sum := md5.Sum([]byte(password + user))
	return "md5" + hex.EncodeToString(sum[:])
}

// connectErr connects with pgx and returns the error, closing any connection.
func connectErr(t *testing.T, dsn string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err == nil {
		conn.Close(context.Background())
	}
	return err
}

// pgErrorOf returns the PostgreSQL error err carries, failing if none.
func pgErrorOf(t *testing.T, err error) *pgconn.PgError {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) carries no PostgreSQL error", err, err)
	}
	return pe
}

// firstAuthRequest sends a StartupMessage for user to the proxy and returns
// the type of the first reply: which authentication the proxy asked for.
func firstAuthRequest(t *testing.T, p *testProxy, user string) string {
	t.Helper()
	nc, err := net.DialTimeout("tcp", fmt.Sprintf("%s:%d", p.Host, p.Port), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(ioTimeout))
	fe := pgproto3.NewFrontend(nc, nc)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber, Parameters: map[string]string{"user": user, "database": appDB}})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	m, err := fe.Receive()
	if err != nil {
		t.Fatal(err)
	}
	if sasl, ok := m.(*pgproto3.AuthenticationSASL); ok {
		return fmt.Sprintf("%T %v", m, sasl.AuthMechanisms)
	}
	return fmt.Sprintf("%T", m)
}

// authUsers adds users whose configured secrets are stored forms rather
// than plaintext.
func authUsers(t *testing.T) func(*config.Config) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		t.Fatal(err)
	}
	verifier := scramVerifier(t, "verifieruser-pw", salt, 4096)
	return func(cfg *config.Config) {
		cfg.Proxy.Users["verifieruser"] = proxy.User{Password: verifier, AuthMethod: "scram-sha-256"}
		cfg.Proxy.Users["md5hash_md5"] = proxy.User{Password: md5Secret("md5hash_md5", "md5hash_md5-pw"), AuthMethod: "md5"}
		cfg.Proxy.Users["md5hash_pw"] = proxy.User{Password: md5Secret("md5hash_pw", "md5hash_pw-pw"), AuthMethod: "password"}
		// The default method (SCRAM) with an md5 hash falls back to md5, as PostgreSQL does.
		cfg.Proxy.Users["md5hash_default"] = proxy.User{Password: md5Secret("md5hash_default", "md5hash_default-pw")}
	}
}

func TestAuthMethodsSucceed(t *testing.T) {
	t.Parallel()
	p := startProxy(t, authUsers(t))
	for _, tc := range []struct {
		user, password string
		request        string // the proxy's first authentication message
	}{
		{"scramuser", "scramuser-pw", "*pgproto3.AuthenticationSASL [SCRAM-SHA-256]"},
		{appUser, appPassword, "*pgproto3.AuthenticationSASL [SCRAM-SHA-256]"},
		{"md5user", "md5user-pw", "*pgproto3.AuthenticationMD5Password"},
		{"pwuser", "pwuser-pw", "*pgproto3.AuthenticationCleartextPassword"},
		{"trustuser", "", "*pgproto3.AuthenticationOk"},
		{"trustuser", "any-password-at-all", "*pgproto3.AuthenticationOk"},
		{"verifieruser", "verifieruser-pw", "*pgproto3.AuthenticationSASL [SCRAM-SHA-256]"},
		{"md5hash_md5", "md5hash_md5-pw", "*pgproto3.AuthenticationMD5Password"},
		{"md5hash_pw", "md5hash_pw-pw", "*pgproto3.AuthenticationCleartextPassword"},
		{"md5hash_default", "md5hash_default-pw", "*pgproto3.AuthenticationMD5Password"},
	} {
		t.Run(tc.user, func(t *testing.T) {
			t.Parallel()
			if got := firstAuthRequest(t, p, tc.user); got != tc.request {
				t.Errorf("proxy asked %s for %s, want %s", got, tc.user, tc.request)
			}
			cfg, err := pgx.ParseConfig(p.DSN(tc.user, "x", appDB))
			if err != nil {
				t.Fatal(err)
			}
			cfg.Password = tc.password
			ctx := testCtx(t)
			conn, err := pgx.ConnectConfig(ctx, cfg)
			if err != nil {
				t.Fatalf("connect as %s: %v", tc.user, err)
			}
			defer conn.Close(context.Background())
			// pgone logs in to the server as app for every client user.
			var user, db string
			if err := conn.QueryRow(ctx, "SELECT current_user, current_database()").Scan(&user, &db); err != nil {
				t.Fatal(err)
			}
			if user != appUser || db != appDB {
				t.Fatalf("server session is %s on %s, want %s on %s", user, db, appUser, appDB)
			}
		})
	}
}

// TestAuthFailuresLookLikePostgreSQL checks that a wrong password and an
// unknown user fail alike, with exactly the error PostgreSQL gives for the
// same user name.
func TestAuthFailuresLookLikePostgreSQL(t *testing.T) {
	t.Parallel()
	p := startProxy(t, authUsers(t))
	for _, user := range []string{appUser, "scramuser", "md5user", "pwuser", "verifieruser", "md5hash_md5", "md5hash_pw", "nosuchuser"} {
		t.Run(user, func(t *testing.T) {
			t.Parallel()
			direct := pgErrorOf(t, connectErr(t, cluster.Primary.DSN(user, "wrong-password", appDB)))
			proxied := pgErrorOf(t, connectErr(t, p.DSN(user, "wrong-password", appDB)))
			if direct.Code != "28P01" {
				t.Fatalf("PostgreSQL said %s %q; the test expects 28P01", direct.Code, direct.Message)
			}
			if proxied.Code != direct.Code || proxied.Message != direct.Message || proxied.Severity != direct.Severity {
				t.Errorf("through pgone: %s %s %q; PostgreSQL: %s %s %q",
					proxied.Severity, proxied.Code, proxied.Message, direct.Severity, direct.Code, direct.Message)
			}
			if !strings.Contains(proxied.Message, fmt.Sprintf("%q", user)) {
				t.Errorf("message %q does not name the user", proxied.Message)
			}
		})
	}
}

// TestUnknownDatabase checks 3D000 for an unknown database, both when pgone
// decides (no "*" entry) and when PostgreSQL does (through "*"), and that
// authentication comes first: a wrong password gives 28P01.
func TestUnknownDatabase(t *testing.T) {
	t.Parallel()
	const db = "nosuchdb"
	direct := pgErrorOf(t, connectErr(t, cluster.Primary.DSN(appUser, appPassword, db)))
	directWrongPw := pgErrorOf(t, connectErr(t, cluster.Primary.DSN(appUser, "wrong-password", db)))
	if direct.Code != "3D000" || directWrongPw.Code != "28P01" {
		t.Fatalf("PostgreSQL said %s and %s; the test expects 3D000 and 28P01", direct.Code, directWrongPw.Code)
	}
	withWildcard := startProxy(t, nil)
	withoutWildcard := startProxy(t, func(cfg *config.Config) { delete(cfg.Proxy.Databases, "*") })
	for name, p := range map[string]*testProxy{"through the * entry": withWildcard, "not configured": withoutWildcard} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for _, user := range []string{appUser, "scramuser", "md5user", "pwuser"} {
				got := pgErrorOf(t, connectErr(t, p.DSN(user, user+"-pw", db)))
				if user == appUser {
					got = pgErrorOf(t, connectErr(t, p.DSN(user, appPassword, db)))
				}
				if got.Code != direct.Code || got.Message != direct.Message || got.Severity != direct.Severity {
					t.Errorf("%s: %s %s %q; PostgreSQL: %s %s %q", user, got.Severity, got.Code, got.Message, direct.Severity, direct.Code, direct.Message)
				}
				wrong := pgErrorOf(t, connectErr(t, p.DSN(user, "wrong-password", db)))
				if wrong.Code != directWrongPw.Code {
					t.Errorf("%s, wrong password: %s %q; want %s (authentication before the database)", user, wrong.Code, wrong.Message, directWrongPw.Code)
				}
			}
			// The proxy still serves the database that exists.
			if err := connectErr(t, p.AppDSN()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// writeSelfSignedCert writes a certificate for 127.0.0.1 and its key.
func writeSelfSignedCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "pgone test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// tlsDSN is the app DSN with another sslmode (and extra settings).
func tlsDSN(p *testProxy, sslmode string, extra ...string) string {
	dsn := strings.Replace(p.AppDSN(), "sslmode=disable", "sslmode="+sslmode, 1)
	return strings.Join(append([]string{dsn}, extra...), " ")
}

// connectTLS connects and reports whether the client connection is TLS.
func connectTLS(t *testing.T, dsn string) (bool, error) {
	t.Helper()
	ctx := testCtx(t)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return false, err
	}
	defer conn.Close(context.Background())
	var one int
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatalf("query over %s: %v", dsn, err)
	}
	_, isTLS := conn.PgConn().Conn().(*tls.Conn)
	return isTLS, nil
}

func TestClientTLS(t *testing.T) {
	t.Parallel()
	certFile, keyFile := writeSelfSignedCert(t)
	withTLS := func(mode proxy.TLSMode) func(*config.Config) {
		return func(cfg *config.Config) {
			cfg.Proxy.TLS = proxy.ClientTLS{Mode: mode, CertFile: certFile, KeyFile: keyFile}
		}
	}
	t.Run("require", func(t *testing.T) {
		t.Parallel()
		p := startProxy(t, withTLS(proxy.TLSRequire))
		_, err := connectTLS(t, tlsDSN(p, "disable"))
		if pe := pgErrorOf(t, err); pe.Code != "28000" {
			t.Fatalf("plain client: %s %q, want 28000", pe.Code, pe.Message)
		}
		// Authentication has not started: a wrong password gets the same answer.
		if pe := pgErrorOf(t, connectErr(t, strings.Replace(tlsDSN(p, "disable"), "password="+appPassword, "password=wrong", 1))); pe.Code != "28000" {
			t.Fatalf("plain client with a wrong password: %s %q, want 28000", pe.Code, pe.Message)
		}
		isTLS, err := connectTLS(t, tlsDSN(p, "require"))
		if err != nil || !isTLS {
			t.Fatalf("sslmode=require: TLS %v, %v", isTLS, err)
		}
		// The certificate pgone presents is the configured one.
		isTLS, err = connectTLS(t, tlsDSN(p, "verify-full", "sslrootcert="+certFile))
		if err != nil || !isTLS {
			t.Fatalf("sslmode=verify-full: TLS %v, %v", isTLS, err)
		}
		// prefer tries TLS first.
		isTLS, err = connectTLS(t, tlsDSN(p, "prefer"))
		if err != nil || !isTLS {
			t.Fatalf("sslmode=prefer: TLS %v, %v", isTLS, err)
		}
	})
	t.Run("allow", func(t *testing.T) {
		t.Parallel()
		p := startProxy(t, withTLS(proxy.TLSAllow))
		isTLS, err := connectTLS(t, tlsDSN(p, "disable"))
		if err != nil || isTLS {
			t.Fatalf("sslmode=disable: TLS %v, %v", isTLS, err)
		}
		isTLS, err = connectTLS(t, tlsDSN(p, "require"))
		if err != nil || !isTLS {
			t.Fatalf("sslmode=require: TLS %v, %v", isTLS, err)
		}
	})
	t.Run("disable", func(t *testing.T) {
		t.Parallel()
		p := startProxy(t, nil)
		if _, err := connectTLS(t, tlsDSN(p, "require")); err == nil {
			t.Fatal("sslmode=require connected to a proxy without TLS")
		}
		isTLS, err := connectTLS(t, tlsDSN(p, "prefer"))
		if err != nil || isTLS {
			t.Fatalf("sslmode=prefer: TLS %v, %v", isTLS, err)
		}
	})
}
