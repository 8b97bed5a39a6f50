package proxy_test

import (
	"encoding/binary"
	"net"
	"runtime"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgone/pgone/config"
)

// rawStartup opens a raw connection to p, sends a StartupMessage for user
// and reads up to the first authentication request.
func rawStartup(t *testing.T, p *testProxy, user string) (net.Conn, *pgproto3.Frontend) {
	t.Helper()
	nc := dialProxy(t, p)
	fe := pgproto3.NewFrontend(nc, nc)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber,
		Parameters: map[string]string{"user": user, "database": appDB}})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	m, err := fe.Receive()
	if err != nil {
		t.Fatalf("startup: %v", err)
	}
	switch m.(type) {
	case *pgproto3.AuthenticationCleartextPassword, *pgproto3.AuthenticationSASL, *pgproto3.AuthenticationMD5Password:
	default:
		t.Fatalf("startup: got %T, want an authentication request", m)
	}
	return nc, fe
}

// hugeHeader is the header of a password message declaring size bytes.
func hugeHeader(size int) []byte {
	return binary.BigEndian.AppendUint32([]byte{'p'}, uint32(size+4))
}

// TestAuthMessageOverLimit checks that an unauthenticated client declaring
// a 200 MB password or SASL message is refused at once with 08P01 and a
// close (PostgreSQL's PG_MAX_AUTH_TOKEN_LENGTH is 65,535), that pgone does
// not allocate the declared size, and that a message at the limit is still
// read (and fails as a wrong password).
func TestAuthMessageOverLimit(t *testing.T) {
	// Not parallel: it measures the process's allocations.
	p := startProxy(t, nil)
	const declared = 200 << 20
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	for _, user := range []string{"pwuser", "scramuser", "md5user"} {
		nc, fe := rawStartup(t, p, user)
		if _, err := nc.Write(append(hugeHeader(declared), "partial"...)); err != nil {
			t.Fatal(err)
		}
		expectFatalThenClose(t, nc, fe, "08P01", "message length")
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
		t.Fatalf("3 clients declaring %d bytes made pgone allocate %d bytes", declared, grew)
	}

	// At the limit the message is read whole and judged as a password.
	nc, fe := rawStartup(t, p, "pwuser")
	body := make([]byte, 65535)
	for i := range body[:len(body)-1] {
		body[i] = 'x'
	}
	if _, err := nc.Write(append(hugeHeader(len(body)), body...)); err != nil {
		t.Fatal(err)
	}
	expectFatalThenClose(t, nc, fe, "28P01", "password authentication failed")
}

// TestMaxLoginsInProgress checks that clients beyond
// limits.max_logins_in_progress that have not finished logging in are
// refused with 53300, and that a finished login frees its place.
func TestMaxLoginsInProgress(t *testing.T) {
	t.Parallel()
	p := startProxy(t, func(cfg *config.Config) { cfg.Proxy.Limits.MaxLoginsInProgress = 2 })
	a, _ := rawStartup(t, p, "pwuser")
	rawStartup(t, p, "pwuser") // b: waits in its login to the end of the test
	nc := dialProxy(t, p)
	fe := pgproto3.NewFrontend(nc, nc)
	expectFatalThenClose(t, nc, fe, "53300", "logging in")
	// A login that ends (here: abandoned) frees its place.
	_ = a.Close()
	waitUntil(t, "the abandoned login to end", func() bool {
		return connectErr(t, pwDSN(p)) == nil
	})
	// Logged-in clients do not count: they come in one after another
	// through the place b leaves free.
	for i := 0; i < 3; i++ {
		conn := connect(t, pwDSN(p))
		if err := conn.Ping(testCtx(t)); err != nil {
			t.Fatal(err)
		}
	}
	// b still counts: with c in the free place, the next is refused.
	rawStartup(t, p, "pwuser") // c
	nc = dialProxy(t, p)
	fe = pgproto3.NewFrontend(nc, nc)
	expectFatalThenClose(t, nc, fe, "53300", "logging in")
}
