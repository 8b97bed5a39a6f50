package pgtest

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

func TestRedis(t *testing.T) {
	r := NewRedis(t)
	conn, err := net.DialTimeout("tcp", r.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	rd := bufio.NewReader(conn)
	for _, step := range []struct{ send, want string }{
		{"*1\r\n$4\r\nPING\r\n", "+PONG\r\n"},
		{"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n", "+OK\r\n"},
		// Persistence is off: no AOF, no RDB snapshots (the whole reply,
		// name and value, not just its array header).
		{"*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$10\r\nappendonly\r\n", "*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n"},
		{"*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$4\r\nsave\r\n", "*2\r\n$4\r\nsave\r\n$0\r\n\r\n"},
	} {
		if _, err := conn.Write([]byte(step.send)); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(step.want))
		if _, err := io.ReadFull(rd, got); err != nil {
			t.Fatalf("sent %q, read %q: %v", step.send, got, err)
		}
		if string(got) != step.want {
			t.Fatalf("sent %q, got %q, want %q", step.send, got, step.want)
		}
		if n := rd.Buffered(); n > 0 {
			rest, _ := rd.Peek(n)
			t.Fatalf("sent %q, got %q and then %q, want only %q", step.send, got, rest, step.want)
		}
	}
	conn.Close()

	addr, dir := r.Addr, r.dir
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := r.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after Stop", addr)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still exists after Stop (%v)", dir, err)
	}
}

// TestRedisKillRestart: Kill stops redis-server at once and Restart
// brings it back on the same address, empty.
func TestRedisKillRestart(t *testing.T) {
	r := NewRedis(t)
	if r.Pid() == 0 {
		t.Fatal("no pid for a running redis-server")
	}
	if err := r.Kill(); err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", r.Addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections after Kill", r.Addr)
	}
	if err := r.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := ping(context.Background(), r.Addr); err != nil {
		t.Fatalf("after Restart: %v", err)
	}
}
