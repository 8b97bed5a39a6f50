package pool

import (
	"net"
	"testing"
	"time"
)

// TestReplicaDialGivesUpOnSilentServer: a replica whose socket accepts but
// never answers the startup packet (a SIGSTOPped postmaster) fails a
// client's dial within replicaDialTimeout, not server_connect_timeout, so
// the proxy sends the read to the primary instead of hanging it.
func TestReplicaDialGivesUpOnSilentServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		var held []net.Conn // accepted, never answered
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	m := testManager(t, 30*time.Second)
	if m.cfg.ServerConnectTimeout != 15*time.Second {
		t.Fatalf("server_connect_timeout default %s, want 15s", m.cfg.ServerConnectTimeout)
	}
	addr := ln.Addr().(*net.TCPAddr)
	target := Target{Host: "127.0.0.1", Port: addr.Port, Database: "db", User: "u"}
	key := Key{Database: "db", User: "u", Replica: ln.Addr().String()}
	began := time.Now()
	c, err := m.Acquire(ctxFor(t), key, target)
	took := time.Since(began)
	if err == nil {
		m.Release(c)
		t.Fatal("a silent replica gave a connection")
	}
	if limit := replicaDialTimeout(&m.cfg); took > limit+2*time.Second {
		t.Fatalf("the dial of a silent replica failed after %s, want about %s", took, limit)
	}
	// The bound never exceeds server_connect_timeout.
	if got := replicaDialTimeout(&Config{ServerConnectTimeout: time.Second, ReplicaCheckInterval: time.Second}); got != time.Second {
		t.Errorf("replicaDialTimeout above server_connect_timeout: %s", got)
	}
}
