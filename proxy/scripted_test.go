package proxy_test

import (
	"errors"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/proxy"
)

// scriptedServer is a PostgreSQL stand-in for faults a real server cannot
// be made to produce on cue (dying exactly after a COMMIT arrived, a FATAL
// while its client is idle). It lets anyone in (trust), answers pgone's
// own setup queries (RESET ALL, the settings snapshot) itself, and runs
// script on every connection for the rest. Cancel requests are counted and
// otherwise ignored.
type scriptedServer struct {
	ln      net.Listener
	script  func(c *scriptedConn)
	wg      sync.WaitGroup
	mu      sync.Mutex
	cancels int
	// onCancel, if set, runs for each cancel request while its connection
	// is still open (as PostgreSQL's postmaster child is still signalling).
	onCancel func()
}

// setOnCancel sets onCancel.
func (s *scriptedServer) setOnCancel(f func()) {
	s.mu.Lock()
	s.onCancel = f
	s.mu.Unlock()
}

func startScripted(t *testing.T, script func(c *scriptedConn)) *scriptedServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &scriptedServer{ln: ln, script: script}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for pid := uint32(1000); ; pid++ {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer nc.Close()
				s.serve(nc, pid)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

func (s *scriptedServer) serve(nc net.Conn, pid uint32) {
	be := pgproto3.NewBackend(nc, nc)
	msg, err := be.ReceiveStartupMessage()
	if err != nil {
		return
	}
	if _, ok := msg.(*pgproto3.CancelRequest); ok {
		s.mu.Lock()
		s.cancels++
		f := s.onCancel
		s.mu.Unlock()
		if f != nil {
			f()
		}
		return
	}
	be.Send(&pgproto3.AuthenticationOk{})
	be.Send(&pgproto3.ParameterStatus{Name: "server_version", Value: "15.0"})
	be.Send(&pgproto3.BackendKeyData{ProcessID: pid, SecretKey: []byte{1, 2, 3, 4}})
	be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	if be.Flush() != nil {
		return
	}
	s.script(&scriptedConn{be: be, nc: nc, tx: 'I'})
}

func (s *scriptedServer) cancelCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cancels
}

// proxyTo starts pgone in transaction mode with database "fake" on s.
func (s *scriptedServer) proxyTo(t *testing.T, mutate func(*config.Config)) *testProxy {
	t.Helper()
	port := s.ln.Addr().(*net.TCPAddr).Port
	return startProxy(t, func(c *config.Config) {
		c.Pool.Mode = pool.ModeTransaction
		c.Pool.PoolSize = 2
		c.Proxy.Databases["fake"] = proxy.Database{Host: "127.0.0.1", Port: port, User: "fake"}
		if mutate != nil {
			mutate(c)
		}
	})
}

// scriptedConn is one server connection of a scriptedServer.
type scriptedConn struct {
	be  *pgproto3.Backend
	nc  net.Conn
	tx  byte // transaction status for the next ReadyForQuery
	set bool // the client changed a setting (scripts that track it)
}

var errScriptEnd = errors.New("client ended")

// next returns the next message that is not one of pgone's setup queries.
func (c *scriptedConn) next() (pgproto3.FrontendMessage, error) {
	for {
		msg, err := c.be.Receive()
		if err != nil {
			return nil, err
		}
		switch m := msg.(type) {
		case *pgproto3.Terminate:
			return nil, errScriptEnd
		case *pgproto3.Query:
			if m.String == "RESET ALL" || strings.Contains(m.String, "pg_catalog.pg_settings") {
				c.be.Send(&pgproto3.CommandComplete{CommandTag: []byte("SELECT 0")})
				c.be.Send(&pgproto3.ReadyForQuery{TxStatus: c.tx})
				if err := c.be.Flush(); err != nil {
					return nil, err
				}
				continue
			}
		}
		return msg, nil
	}
}

// answer replies to msg as PostgreSQL would to a statement that succeeds,
// following BEGIN, COMMIT and ROLLBACK in the transaction status.
func (c *scriptedConn) answer(msg pgproto3.FrontendMessage) error {
	switch m := msg.(type) {
	case *pgproto3.Query:
		tag := strings.ToUpper(strings.Fields(m.String + " X")[0])
		switch tag {
		case "BEGIN":
			c.tx = 'T'
		case "COMMIT", "ROLLBACK":
			c.tx = 'I'
		}
		c.be.Send(&pgproto3.CommandComplete{CommandTag: []byte(tag)})
		c.be.Send(&pgproto3.ReadyForQuery{TxStatus: c.tx})
	case *pgproto3.Parse:
		c.be.Send(&pgproto3.ParseComplete{})
	case *pgproto3.Bind:
		c.be.Send(&pgproto3.BindComplete{})
	case *pgproto3.Describe:
		c.be.Send(&pgproto3.NoData{})
	case *pgproto3.Execute:
		c.be.Send(&pgproto3.CommandComplete{CommandTag: []byte("OK")})
	case *pgproto3.Close:
		c.be.Send(&pgproto3.CloseComplete{})
	case *pgproto3.Sync:
		c.be.Send(&pgproto3.ReadyForQuery{TxStatus: c.tx})
	}
	return c.be.Flush()
}

// serveUntil answers every message until dies accepts one: then, with
// fatal, it sends a FATAL as pg_terminate_backend does, and the
// connection ends without a reply.
func (c *scriptedConn) serveUntil(dies func(pgproto3.FrontendMessage) bool, fatal bool) {
	for {
		msg, err := c.next()
		if err != nil {
			return
		}
		if dies(msg) {
			if fatal {
				c.sendFatal()
			}
			return
		}
		if c.answer(msg) != nil {
			return
		}
	}
}

// takeBegin serves a connection whose first message is not a simple BEGIN
// as a healthy server would, to its end, and returns false. On the one
// that starts with BEGIN it returns a copy of it (Receive reuses its
// messages), unanswered, for the script to play out.
func (c *scriptedConn) takeBegin() (*pgproto3.Query, bool) {
	msg, err := c.next()
	if err != nil {
		return nil, false
	}
	if q, ok := msg.(*pgproto3.Query); ok && q.String == "BEGIN" {
		begin := *q
		return &begin, true
	}
	if c.answer(msg) == nil {
		c.serveUntil(func(pgproto3.FrontendMessage) bool { return false }, false)
	}
	return nil, false
}

func (c *scriptedConn) sendFatal() {
	c.be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: "57P01",
		Message: "terminating connection due to administrator command"})
	_ = c.be.Flush()
}

// queryIs accepts a simple Query with exactly text.
func queryIs(text string) func(pgproto3.FrontendMessage) bool {
	return func(m pgproto3.FrontendMessage) bool {
		q, ok := m.(*pgproto3.Query)
		return ok && q.String == text
	}
}

// errorsIn returns the ErrorResponses of a reply recorded by readUntil.
func errorsIn(reply []string) []string {
	var errs []string
	for _, m := range reply {
		if strings.HasPrefix(m, "*pgproto3.ErrorResponse") {
			errs = append(errs, m)
		}
	}
	return errs
}
