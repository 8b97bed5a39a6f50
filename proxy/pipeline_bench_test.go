package proxy_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/proxy"
)

// BenchmarkTxModeRequest sends one request at a time through pgone's
// transaction-mode pipeline to a scripted server (collect, plan, backend,
// render, write, replies, release): a simple Query, and an extended
// Parse/Bind/Execute/Sync of the unnamed statement, and a Bind/Execute/Sync
// of a named statement prepared once. Allocations are the
// whole process's (client, pgone, fake server); compare them between
// versions, not as an absolute.
func BenchmarkTxModeRequest(b *testing.B) {
	srv := startScriptedB(b)
	p := srv.proxyToB(b)
	ctx := context.Background()
	pc, err := pgconn.Connect(ctx, p.DSN(appUser, appPassword, "fake"))
	if err != nil {
		b.Fatal(err)
	}
	defer pc.Close(ctx)
	nc := pc.Conn()
	br := bufio.NewReader(nc)

	var simple []byte
	simple, _ = (&pgproto3.Query{String: "SELECT 1"}).Encode(simple)
	var extended []byte
	for _, m := range []pgproto3.FrontendMessage{
		&pgproto3.Parse{Query: "SELECT $1::int"},
		&pgproto3.Bind{Parameters: [][]byte{[]byte("1")}},
		&pgproto3.Execute{},
		&pgproto3.Sync{},
	} {
		extended, _ = m.Encode(extended)
	}
	// prepared: a named statement, prepared once, then Bind/Execute/Sync
	// per request (pgbench -M prepared).
	var prepare []byte
	for _, m := range []pgproto3.FrontendMessage{
		&pgproto3.Parse{Name: "s1", Query: "SELECT $1::int"},
		&pgproto3.Sync{},
	} {
		prepare, _ = m.Encode(prepare)
	}
	if _, err := nc.Write(prepare); err != nil {
		b.Fatal(err)
	}
	if err := readToReady(br); err != nil {
		b.Fatal(err)
	}
	var prepared []byte
	for _, m := range []pgproto3.FrontendMessage{
		&pgproto3.Bind{PreparedStatement: "s1", Parameters: [][]byte{[]byte("1")}},
		&pgproto3.Execute{},
		&pgproto3.Sync{},
	} {
		prepared, _ = m.Encode(prepared)
	}
	for _, bc := range []struct {
		name string
		req  []byte
	}{{"simple", simple}, {"extended", extended}, {"prepared", prepared}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			cpu := processCPU()
			for i := 0; i < b.N; i++ {
				if _, err := nc.Write(bc.req); err != nil {
					b.Fatal(err)
				}
				if err := readToReady(br); err != nil {
					b.Fatal(err)
				}
			}
			// The process's CPU (user and system) per request: less
			// noisy than ns/op on a shared machine, and it counts the
			// pump goroutines' and the kernel's work for pgone too.
			b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}

// processCPU is the CPU time (user and system) the process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// readToReady reads backend frames up to a ReadyForQuery.
func readToReady(br *bufio.Reader) error {
	var hdr [5]byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return err
		}
		n := int(binary.BigEndian.Uint32(hdr[1:])) - 4
		if _, err := br.Discard(n); err != nil {
			return err
		}
		if hdr[0] == 'Z' {
			return nil
		}
	}
}

// startScriptedB starts a scripted server that answers every message.
func startScriptedB(b *testing.B) *scriptedServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s := &scriptedServer{ln: ln, script: func(c *scriptedConn) { c.serveUntil(func(pgproto3.FrontendMessage) bool { return false }, false) }}
	go func() {
		for pid := uint32(1000); ; pid++ {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				s.serve(nc, pid)
			}()
		}
	}()
	b.Cleanup(func() { ln.Close() })
	return s
}

// proxyToB starts pgone in transaction mode with database "fake" on s.
func (s *scriptedServer) proxyToB(b *testing.B) *testProxy {
	port := s.ln.Addr().(*net.TCPAddr).Port
	return startProxy(b, func(c *config.Config) {
		c.Pool.Mode = pool.ModeTransaction
		c.Pool.PoolSize = 2
		c.Proxy.Databases["fake"] = proxy.Database{Host: "127.0.0.1", Port: port, User: "fake"}
	})
}
