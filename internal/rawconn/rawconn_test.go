package rawconn_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/pgone/pgone/internal/rawconn"
	"github.com/pgone/pgone/internal/rawconn/rawconntest"
)

// pair returns a wrapped client end and the plain server end of a loopback
// TCP connection.
func pair(t *testing.T) (net.Conn, net.Conn) { return rawconntest.Pair(t) }

func TestWrapOnlySockets(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if rawconn.Wrap(a) != a {
		t.Fatal("a net.Pipe end has no socket: Wrap must return it unchanged")
	}
	w, _ := pair(t)
	if runtime.GOOS == "linux" {
		if _, ok := w.(*rawconn.Conn); !ok {
			t.Fatalf("rawconn.Wrap(TCPConn) = %T, want *rawconn.Conn", w)
		}
	}
	if rawconn.Wrap(w) != w {
		t.Fatal("wrapping twice must return the same conn")
	}
}

func TestReadWriteBothWays(t *testing.T) {
	w, s := pair(t)
	if _, err := w.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	n, err := io.ReadFull(s, buf[:5])
	if err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("server read %q, %v", buf[:n], err)
	}
	go func() { _, _ = s.Write([]byte("world")) }()
	n, err = io.ReadFull(w, buf[:5])
	if err != nil || string(buf[:n]) != "world" {
		t.Fatalf("wrapped read %q, %v", buf[:n], err)
	}
	if n, err := w.Read(nil); n != 0 || err != nil {
		t.Fatalf("empty read = %d, %v", n, err)
	}
}

// A write larger than the socket buffers completes once the peer reads:
// the writer waits in the netpoller and resumes where it stopped.
func TestLargeWriteWaitsForPeer(t *testing.T) {
	w, s := pair(t)
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<20) // 16 MiB
	got := make(chan []byte, 1)
	go func() {
		time.Sleep(50 * time.Millisecond) // let the buffers fill first
		b, _ := io.ReadAll(io.LimitReader(s, int64(len(data))))
		got <- b
	}()
	n, err := w.Write(data)
	if err != nil || n != len(data) {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(data))
	}
	if b := <-got; !bytes.Equal(b, data) {
		t.Fatalf("peer read %d bytes, not what was written", len(b))
	}
}

func TestEOFWhenPeerCloses(t *testing.T) {
	w, s := pair(t)
	s.Close()
	if _, err := w.Read(make([]byte, 8)); err != io.EOF {
		t.Fatalf("Read after the peer closed = %v, want io.EOF", err)
	}
}

func TestReadDeadline(t *testing.T) {
	w, _ := pair(t)
	if err := w.SetReadDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	_, err := w.Read(make([]byte, 8))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past the deadline = %v, want os.ErrDeadlineExceeded", err)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("deadline error %v is not a net.Error timeout", err)
	}
	// A deadline already past interrupts at once, as pgone's inline waits use it.
	done := make(chan error, 1)
	_ = w.SetReadDeadline(time.Time{})
	go func() {
		_, err := w.Read(make([]byte, 8))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	_ = w.SetReadDeadline(time.Now())
	if err := <-done; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read interrupted by a deadline = %v, want os.ErrDeadlineExceeded", err)
	}
}

func TestCloseEndsBlockedRead(t *testing.T) {
	w, _ := pair(t)
	done := make(chan error, 1)
	go func() {
		_, err := w.Read(make([]byte, 8))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	w.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read on a closed conn = %v, want net.ErrClosed", err)
	}
	if _, err := w.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write on a closed conn = %v, want net.ErrClosed", err)
	}
}

// A reset connection reports the errno, matchable with errors.Is, inside a
// *net.OpError as net's own errors are.
func TestResetIsAnErrno(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("raw I/O is Linux only")
	}
	w, s := pair(t)
	_ = s.(*net.TCPConn).SetLinger(0) // close with RST
	s.Close()
	time.Sleep(20 * time.Millisecond)
	var err error
	for range 10 { // the first write may succeed before the RST is seen
		if _, err = w.Write([]byte("x")); err != nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("Write to a reset conn = %v, want ECONNRESET or EPIPE", err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "write" {
		t.Fatalf("error %v is not a write *net.OpError", err)
	}
}

// A read on a reset connection reports the errno and no bytes (never the
// -1 the system call returns: bufio panics on a negative count).
func TestReadResetIsAnErrno(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("raw I/O is Linux only")
	}
	w, s := pair(t)
	_, _ = w.Write([]byte("unread")) // unread data makes the peer's close a RST
	time.Sleep(20 * time.Millisecond)
	_ = s.(*net.TCPConn).SetLinger(0)
	s.Close()
	time.Sleep(20 * time.Millisecond)
	n, err := w.Read(make([]byte, 8))
	if n != 0 || !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("Read on a reset conn = %d, %v; want 0, ECONNRESET", n, err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "read" {
		t.Fatalf("error %v is not a read *net.OpError", err)
	}
}

// BenchmarkWriteRead is one small write and its read back through a
// wrapped loopback connection: the relay's unit of work.
func BenchmarkWriteRead(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		s, err := ln.Accept()
		if err != nil {
			return
		}
		_, _ = io.Copy(s, s) // echo
		s.Close()
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	c := rawconn.Wrap(nc)
	defer c.Close()
	msg := bytes.Repeat([]byte("x"), 64)
	buf := make([]byte, 64)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
	}
}
