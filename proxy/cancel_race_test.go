package proxy_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/proxy"
)

// cancelVia sends a CancelRequest to addr and waits for the close, as
// libpq does; it returns an error if anything else comes back.
func cancelVia(addr string, pid uint32, secret []byte) error {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(ioTimeout))
	msg, err := (&pgproto3.CancelRequest{ProcessID: pid, SecretKey: secret}).Encode(nil)
	if err != nil {
		return err
	}
	if _, err := nc.Write(msg); err != nil {
		return err
	}
	if n, err := io.Copy(io.Discard, nc); err != nil || n != 0 {
		return fmt.Errorf("after CancelRequest: read %d bytes, %v", n, err)
	}
	return nil
}

// TestTxModeLateCancelSparesNextClient checks that a cancel for client A
// cannot land on client B's query when A's server connection goes to B
// (transaction mode, one server). The cancel is held just before it is
// sent; A's query ends meanwhile and B asks for the server. pgone must
// either have sent the cancel while A held the server and keep the server
// from B until the cancel is done (then B's query runs to the end), never
// send it to the server while B's query runs there.
func TestTxModeLateCancelSparesNextClient(t *testing.T) {
	t.Parallel()
	picked, release := make(chan struct{}, 1), make(chan struct{})
	p := startObservedProxy(t, func(cfg *config.Config) {
		cfg.Pool.Mode = pool.ModeTransaction
		cfg.Pool.PoolSize = 1
	}, func(s *proxy.Server) {
		s.SetBeforeCancelSend(func() {
			picked <- struct{}{}
			<-release
		})
	})
	admin := connect(t, directDSN())
	active := func(query string) bool {
		return scanSingle[int](t, admin, "SELECT count(*) FROM pg_stat_activity WHERE query = $1 AND state = 'active'", query) > 0
	}
	a, err := pgconn.Connect(testCtx(t), p.AppDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(testCtx(t))
	b, err := pgconn.Connect(testCtx(t), p.AppDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(testCtx(t))

	const queryA, queryB = "SELECT pg_sleep(0.3) /* A */", "SELECT pg_sleep(0.3) /* B */"
	run := func(c *pgconn.PgConn, q string) chan error {
		done := make(chan error, 1)
		go func() { _, err := c.Exec(testCtx(t), q).ReadAll(); done <- err }()
		return done
	}
	aDone := run(a, queryA)
	waitUntil(t, "A's query to run", func() bool { return active(queryA) })
	cancelDone := make(chan error, 1)
	addr := fmt.Sprintf("%s:%d", p.Host, p.Port)
	go func() { cancelDone <- cancelVia(addr, a.PID(), a.SecretKey()) }()
	select {
	case <-picked:
	case <-time.After(ioTimeout):
		t.Fatal("the cancel never reached its server")
	}
	bDone := run(b, queryB)
	poolOf := func() pool.Stats {
		for _, s := range p.Pools.Stats() {
			if s.Key == (pool.Key{Database: appDB, User: appUser}) {
				return s
			}
		}
		return pool.Stats{}
	}
	waitUntil(t, "B's query to run, or to wait while A's server is held for the cancel", func() bool {
		if active(queryB) {
			return true
		}
		s := poolOf()
		return !active(queryA) && s.Waiting == 1 && s.Canceling == 1
	})
	close(release)
	if err := <-cancelDone; err != nil {
		t.Fatal(err)
	}
	if err := <-bDone; err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "57014" {
			t.Fatalf("A's cancel canceled B's query: %v", err)
		}
		t.Fatalf("B: %v", err)
	}
	if err := <-aDone; err != nil {
		t.Fatalf("A (done before its cancel was sent): %v", err)
	}
}
