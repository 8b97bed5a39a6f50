package wire_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"

	"github.com/pgone/pgone/internal/wire"
)

// TestReaderAllocatesAsBytesArrive checks that a frame declaring far more
// than the peer sends does not make the reader allocate the declared size:
// a frame claiming 200 MB of which 1 MB arrives costs a few MB.
func TestReaderAllocatesAsBytesArrive(t *testing.T) {
	// Not parallel: it measures the process's allocations.
	const declared, sent = 200 << 20, 1 << 20
	stream := append(header('Q', declared+4), bytes.Repeat([]byte{'x'}, sent)...)
	r := wire.NewReader(bufio.NewReaderSize(bytes.NewReader(stream), 4096), 0)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _, err := r.Next()
	runtime.ReadMemStats(&after)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated frame: %v, want io.ErrUnexpectedEOF", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 8*sent {
		t.Fatalf("a frame declaring %d bytes, %d sent, allocated %d bytes", declared, sent, grew)
	}
}

// TestReaderLargeFrameAllocation: a 100 MiB frame is read with at most
// 1.3 times its size allocated (16 MiB of growing pieces, then the whole
// frame); growing by 4 all the way allocated 1.85 times (the last step
// copied 64 MiB into 100 MiB).
func TestReaderLargeFrameAllocation(t *testing.T) {
	// Not parallel: it measures the process's allocations.
	const n = 100 << 20
	stream := frame('Q', bytes.Repeat([]byte{'x'}, n))
	r := wire.NewReader(bufio.NewReaderSize(bytes.NewReader(stream), 8192), 0)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, got, err := r.Next()
	runtime.ReadMemStats(&after)
	if err != nil || len(got) != len(stream) {
		t.Fatalf("100 MiB frame: %d bytes, err %v", len(got), err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; float64(grew) > 1.3*n {
		t.Fatalf("a %d-byte frame allocated %d bytes (%.2fx)", n, grew, float64(grew)/n)
	}
}

// TestReaderLargeFramesWhole checks frames read in growing pieces arrive
// whole, at sizes around the growth steps.
func TestReaderLargeFramesWhole(t *testing.T) {
	t.Parallel()
	for _, n := range []int{4090, 64 << 10, 64<<10 + 1, 256<<10 - 5, 300 << 10, 3<<20 + 7} {
		body := make([]byte, n)
		for i := range body {
			body[i] = byte(i * 7)
		}
		want := frame('d', body)
		stream := append(append([]byte{}, want...), frame('Z', []byte{'I'})...)
		r := wire.NewReader(bufio.NewReaderSize(bytes.NewReader(stream), 4096), 0)
		_, got, err := r.Next()
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%d-byte body: err %v, frame equal %v", n, err, bytes.Equal(got, want))
		}
		if typ, _, err := r.Next(); err != nil || typ != 'Z' {
			t.Fatalf("after the %d-byte frame: %q %v", n, typ, err)
		}
	}
}
