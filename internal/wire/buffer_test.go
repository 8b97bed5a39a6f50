package wire_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"
	"time"

	"github.com/pgone/pgone/internal/rawconn/rawconntest"
	"github.com/pgone/pgone/internal/wire"
)

// LentBuffer must answer every call as bufio.Reader does for the same
// stream: random Peeks, Discards and Reads are compared call by call.
func TestLentBufferMatchesBufio(t *testing.T) {
	t.Parallel()
	data := make([]byte, 4000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 1))
		want := bufio.NewReaderSize(iotest.HalfReader(bytes.NewReader(data)), minBufio)
		got := wire.NewLentBuffer(iotest.HalfReader(bytes.NewReader(data)), wire.NewBufferPool(minBufio))
		for step := 0; ; step++ {
			n := rng.IntN(minBufio + 4)
			var wb, gb []byte
			var we, ge error
			var wn, gn int
			op := rng.IntN(3)
			switch op {
			case 0:
				wb, we = want.Peek(n)
				gb, ge = got.Peek(n)
			case 1:
				wn, we = want.Discard(n)
				gn, ge = got.Discard(n)
			case 2:
				wp, gp := make([]byte, n), make([]byte, n)
				wn, we = want.Read(wp)
				gn, ge = got.Read(gp)
				wb, gb = wp[:wn], gp[:gn]
			}
			if !bytes.Equal(wb, gb) || wn != gn || !errors.Is(ge, we) || (we == nil) != (ge == nil) {
				t.Fatalf("seed %d step %d op %d(%d): LentBuffer %x %d %v, bufio %x %d %v", seed, step, op, n, gb, gn, ge, wb, wn, we)
			}
			if want.Buffered() != got.Buffered() {
				t.Fatalf("seed %d step %d: Buffered %d, bufio %d", seed, step, got.Buffered(), want.Buffered())
			}
			if we == io.EOF {
				break
			}
		}
	}
}

// waitLent waits until pool has n buffers out, or fails.
func waitLent(t *testing.T, pool *wire.BufferPool, n int, why string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for pool.Lent() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d buffers lent, want %d", why, pool.Lent(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// A reader waiting for its peer holds no buffer; it takes one when data
// comes, and frames arrive intact, also when they span reads.
func TestLentBufferHoldsNoBufferWhileWaiting(t *testing.T) {
	t.Parallel()
	c, peer := rawconntest.Pair(t)
	pool := wire.NewBufferPool(64)
	lb := wire.NewLentBuffer(c, pool)
	r := wire.NewReader(lb, 0)
	type result struct {
		typ   byte
		frame []byte
		err   error
	}
	next := make(chan result)
	go func() {
		for {
			typ, f, err := r.Next()
			next <- result{typ, append([]byte(nil), f...), err}
			if err != nil {
				return
			}
		}
	}()
	waitLent(t, pool, 0, "waiting before any data")
	small := frame('Q', []byte("SELECT 1\x00"))
	large := frame('P', bytes.Repeat([]byte("x"), 300)) // larger than the buffer
	for i, f := range [][]byte{small, large, small} {
		if i == 1 {
			// Split it: the reader must keep the first part while it waits.
			_, _ = peer.Write(f[:100])
			time.Sleep(20 * time.Millisecond)
			_, _ = peer.Write(f[100:])
		} else if _, err := peer.Write(f); err != nil {
			t.Fatal(err)
		}
		got := <-next
		if got.err != nil || !bytes.Equal(got.frame, f) {
			t.Fatalf("frame %d: %q %d bytes, %v; want %d bytes", i, got.typ, len(got.frame), got.err, len(f))
		}
		waitLent(t, pool, 0, "waiting after a frame")
	}
	peer.Close()
	if got := <-next; !errors.Is(got.err, io.EOF) {
		t.Fatalf("after the peer closed: %v, want EOF", got.err)
	}
	lb.Release()
	waitLent(t, pool, 0, "after Release")
}
