package wire_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"github.com/pgone/pgone/internal/wire"
)

// frame builds one message: type byte, int32 length (itself plus body), body.
func frame(typ byte, body []byte) []byte {
	b := []byte{typ}
	b = binary.BigEndian.AppendUint32(b, uint32(4+len(body)))
	return append(b, body...)
}

// header builds a bare header with an arbitrary length field.
func header(typ byte, length int32) []byte {
	return binary.BigEndian.AppendUint32([]byte{typ}, uint32(length))
}

// minBufio is the smallest buffer bufio.NewReaderSize gives.
const minBufio = 16

func TestReaderFramesAcrossBufferBoundaries(t *testing.T) {
	t.Parallel()
	// Frames of every size from an empty body to several buffer lengths,
	// so frames start and end at every offset of a 16-byte buffer and some
	// take the path for frames larger than the buffer.
	var stream []byte
	var want [][]byte
	for n := 0; n <= 5*minBufio; n++ {
		body := bytes.Repeat([]byte{byte('a' + n%26)}, n)
		f := frame(byte('A'+n%26), body)
		want = append(want, f)
		stream = append(stream, f...)
	}
	for _, tc := range []struct {
		name string
		src  func() io.Reader
	}{
		{"whole", func() io.Reader { return bytes.NewReader(stream) }},
		{"one byte at a time", func() io.Reader { return iotest.OneByteReader(bytes.NewReader(stream)) }},
		{"half reads", func() io.Reader { return iotest.HalfReader(bytes.NewReader(stream)) }},
	} {
		for _, buffer := range []struct {
			name string
			make func(io.Reader) wire.Buffered
		}{
			{"bufio", func(src io.Reader) wire.Buffered { return bufio.NewReaderSize(src, minBufio) }},
			{"lent", func(src io.Reader) wire.Buffered { return wire.NewLentBuffer(src, wire.NewBufferPool(minBufio)) }},
		} {
			t.Run(tc.name+"/"+buffer.name, func(t *testing.T) {
				t.Parallel()
				r := wire.NewReader(buffer.make(tc.src()), 1024)
				for i, w := range want {
					typ, got, err := r.Next()
					if err != nil {
						t.Fatalf("frame %d: %v", i, err)
					}
					if typ != w[0] || !bytes.Equal(got, w) {
						t.Fatalf("frame %d: got type %q %x, want %q %x", i, typ, got, w[0], w)
					}
					if !bytes.Equal(wire.Body(got), w[wire.HeaderLen:]) {
						t.Fatalf("frame %d: Body = %x, want %x", i, wire.Body(got), w[wire.HeaderLen:])
					}
				}
				if _, _, err := r.Next(); !errors.Is(err, io.EOF) {
					t.Fatalf("after the last frame: err = %v, want io.EOF", err)
				}
				if r.Broken() {
					t.Fatal("Broken after a clean end of stream")
				}
			})
		}
	}
}

func TestReaderFrameLargerThanBuffer(t *testing.T) {
	t.Parallel()
	big := frame('D', bytes.Repeat([]byte("0123456789"), 10_000)) // 100 kB through a 16-byte buffer
	small := frame('Z', []byte{'I'})
	stream := append(append(append([]byte{}, big...), small...), big...)
	r := wire.NewReader(bufio.NewReaderSize(bytes.NewReader(stream), minBufio), 1<<20)
	for i, want := range [][]byte{big, small, big} {
		typ, got, err := r.Next()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if typ != want[0] || !bytes.Equal(got, want) {
			t.Fatalf("frame %d: got type %q, %d bytes; want %q, %d bytes", i, typ, len(got), want[0], len(want))
		}
	}
}

func TestReaderFrameValidUntilNextCall(t *testing.T) {
	t.Parallel()
	// The documented rule is "valid until the next call"; check that it is
	// at least that: a frame read into the buffer is intact when returned
	// even though the next frame's bytes are already buffered behind it.
	a, b := frame('A', []byte("first")), frame('B', []byte("second"))
	r := wire.NewReader(bufio.NewReader(bytes.NewReader(append(append([]byte{}, a...), b...))), 0)
	_, got, err := r.Next()
	if err != nil || !bytes.Equal(got, a) {
		t.Fatalf("first frame = %x, %v; want %x", got, err, a)
	}
	if !r.HasFrame() {
		t.Fatal("HasFrame = false with the whole second frame buffered")
	}
	if !bytes.Equal(got, a) {
		t.Fatalf("first frame changed by HasFrame: %x", got)
	}
}

func TestReaderBadLength(t *testing.T) {
	t.Parallel()
	for _, length := range []int32{-1, -0x80000000, 0, 1, 3} {
		r := wire.NewReader(bufio.NewReader(bytes.NewReader(header('Q', length))), 1024)
		typ, got, err := r.Next()
		if !errors.Is(err, wire.ErrBadLength) {
			t.Errorf("length %d: err = %v, want ErrBadLength", length, err)
		}
		if typ != 'Q' || got != nil {
			t.Errorf("length %d: got type %q, frame %x; want 'Q' and no frame", length, typ, got)
		}
		if r.HasFrame() {
			t.Errorf("length %d: HasFrame = true for a frame that cannot be read", length)
		}
	}
	// Length 4 is the smallest valid one: an empty body.
	r := wire.NewReader(bufio.NewReader(bytes.NewReader(header('S', 4))), 1024)
	if typ, got, err := r.Next(); err != nil || typ != 'S' || len(got) != wire.HeaderLen {
		t.Fatalf("length 4: got %q %x %v; want an empty Sync", typ, got, err)
	}
}

func TestReaderTooLarge(t *testing.T) {
	t.Parallel()
	const max = 100
	// A body of exactly max bytes passes.
	ok := frame('Q', bytes.Repeat([]byte{'x'}, max))
	r := wire.NewReader(bufio.NewReader(bytes.NewReader(ok)), max)
	if _, got, err := r.Next(); err != nil || !bytes.Equal(got, ok) {
		t.Fatalf("body of max bytes: %v", err)
	}
	for _, length := range []int32{4 + max + 1, 0x7fffffff} {
		// Only the header is sent: the reader must refuse before waiting
		// for (or allocating) the body.
		r := wire.NewReader(bufio.NewReader(bytes.NewReader(header('Q', length))), max)
		_, _, err := r.Next()
		var tl *wire.TooLargeError
		if !errors.As(err, &tl) {
			t.Fatalf("length %d: err = %v, want *TooLargeError", length, err)
		}
		if tl.Type != 'Q' || tl.Len != int(length)-4 || tl.Max != max {
			t.Fatalf("length %d: got %+v; want type Q, Len %d, Max %d", length, *tl, length-4, max)
		}
		if tl.Error() == "" {
			t.Fatal("empty error text")
		}
	}
	// SetMax applies to the next frame.
	r = wire.NewReader(bufio.NewReader(bytes.NewReader(append(append([]byte{}, ok...), ok...))), max)
	if _, _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	r.SetMax(max - 1)
	var tl *wire.TooLargeError
	if _, _, err := r.Next(); !errors.As(err, &tl) {
		t.Fatalf("after SetMax(%d): err = %v, want *TooLargeError", max-1, err)
	}
}

func TestReaderNoLimit(t *testing.T) {
	t.Parallel()
	f := frame('D', bytes.Repeat([]byte{'y'}, 5000))
	for _, max := range []int{0, -1} {
		r := wire.NewReader(bufio.NewReaderSize(bytes.NewReader(f), minBufio), max)
		if _, got, err := r.Next(); err != nil || !bytes.Equal(got, f) {
			t.Fatalf("max %d: %v", max, err)
		}
	}
}

func TestReaderTruncated(t *testing.T) {
	t.Parallel()
	f := frame('D', bytes.Repeat([]byte{'z'}, 100))
	for _, tc := range []struct {
		name       string
		data       []byte
		size       int
		wantErr    error
		wantBroken bool
	}{
		{"no bytes", nil, 4096, io.EOF, false},
		{"part of a header", f[:3], 4096, io.ErrUnexpectedEOF, false},
		// The frame fits the buffer: nothing is consumed before it is whole.
		{"part of a body, small frame", f[:50], 4096, io.ErrUnexpectedEOF, false},
		// The frame is larger than the buffer: part of it was consumed.
		{"part of a body, large frame", f[:50], minBufio, io.ErrUnexpectedEOF, true},
	} {
		r := wire.NewReader(bufio.NewReaderSize(bytes.NewReader(tc.data), tc.size), 1024)
		_, got, err := r.Next()
		if !errors.Is(err, tc.wantErr) || got != nil {
			t.Errorf("%s: got %x, %v; want %v", tc.name, got, err, tc.wantErr)
		}
		if r.Broken() != tc.wantBroken {
			t.Errorf("%s: Broken = %v, want %v", tc.name, r.Broken(), tc.wantBroken)
		}
	}
}

func TestReaderHasFrame(t *testing.T) {
	t.Parallel()
	a := frame('A', []byte("hello"))
	b := frame('B', bytes.Repeat([]byte{'b'}, 40))
	pr, pw := io.Pipe()
	br := bufio.NewReaderSize(pr, 4096)
	r := wire.NewReader(br, 1024)
	if r.HasFrame() {
		t.Fatal("HasFrame on an empty buffer")
	}
	// Write one whole frame and half of the next, then read the first.
	go func() {
		_, _ = pw.Write(append(append([]byte{}, a...), b[:20]...))
	}()
	if _, got, err := r.Next(); err != nil || !bytes.Equal(got, a) {
		t.Fatalf("first frame = %x, %v", got, err)
	}
	// Whatever part of the write bufio took in, the second frame is not whole.
	if r.HasFrame() {
		t.Fatalf("HasFrame = true with %d of %d bytes buffered", r.Buffered(), len(b))
	}
	go func() {
		_, _ = pw.Write(b[20:])
		_, _ = pw.Write(a)
	}()
	if _, got, err := r.Next(); err != nil || !bytes.Equal(got, b) {
		t.Fatalf("second frame = %x, %v", got, err)
	}
	// Wait until the third frame is buffered, through Peek (which does not consume).
	if _, err := br.Peek(len(a)); err != nil {
		t.Fatal(err)
	}
	if !r.HasFrame() || r.Buffered() != len(a) {
		t.Fatalf("HasFrame = %v, Buffered = %d; want true, %d", r.HasFrame(), r.Buffered(), len(a))
	}
	_ = pw.Close()
}

func TestReaderHasFrameLargerThanBuffer(t *testing.T) {
	t.Parallel()
	// A frame that cannot fit the buffer is never "whole in the buffer".
	big := frame('D', bytes.Repeat([]byte{'q'}, 3*minBufio))
	br := bufio.NewReaderSize(bytes.NewReader(big), minBufio)
	if _, err := br.Peek(minBufio); err != nil {
		t.Fatal(err)
	}
	r := wire.NewReader(br, 0)
	if r.HasFrame() {
		t.Fatal("HasFrame = true for a frame larger than the buffer")
	}
	if _, got, err := r.Next(); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("Next = %d bytes, %v", len(got), err)
	}
}

func TestReaderSpans(t *testing.T) {
	t.Parallel()
	big := frame('D', bytes.Repeat([]byte{'q'}, 3*minBufio))
	small := frame('Z', []byte{'I'})
	br := bufio.NewReaderSize(bytes.NewReader(append(append([]byte(nil), small...), big...)), minBufio)
	r := wire.NewReader(br, 0)
	if r.Spans() {
		t.Fatal("Spans = true with nothing buffered")
	}
	if _, err := br.Peek(wire.HeaderLen); err != nil {
		t.Fatal(err)
	}
	if r.Spans() {
		t.Fatal("Spans = true for a frame that fits the buffer")
	}
	if _, _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if _, err := br.Peek(wire.HeaderLen); err != nil {
		t.Fatal(err)
	}
	if !r.Spans() {
		t.Fatal("Spans = false for a frame larger than the buffer")
	}
}

// FuzzReader feeds arbitrary bytes through Next and HasFrame. Every frame
// returned must be whole and consistent: its length field matches its size,
// its body is within the limit, it is the input's next bytes, and HasFrame
// never promises a frame that Next then runs out of bytes for.
func FuzzReader(f *testing.F) {
	f.Add([]byte{}, uint16(1024), uint8(0))
	f.Add(frame('Q', []byte("SELECT 1\x00")), uint16(1024), uint8(0))
	f.Add(append(frame('P', []byte("\x00SELECT $1\x00\x00\x00")), frame('S', nil)...), uint16(16), uint8(3))
	f.Add(header('Q', 2), uint16(1024), uint8(0))
	f.Add(header('Q', 0x7fffffff), uint16(1024), uint8(0))
	f.Add(header('Q', -1), uint16(1024), uint8(1))
	f.Add(append(frame('D', bytes.Repeat([]byte{'x'}, 200)), frame('Z', []byte{'I'})...), uint16(300), uint8(2))
	f.Add(frame('D', bytes.Repeat([]byte{'x'}, 200))[:100], uint16(300), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, max16 uint16, mode uint8) {
		max := int(max16)%4096 + 1 // always a limit, so a fuzzed length cannot make it allocate gigabytes
		var src io.Reader = bytes.NewReader(data)
		switch mode % 3 {
		case 1:
			src = iotest.OneByteReader(src)
		case 2:
			src = iotest.HalfReader(src)
		}
		r := wire.NewReader(bufio.NewReaderSize(src, minBufio+int(mode)), max)
		consumed := 0
		for {
			promised := r.HasFrame()
			typ, got, err := r.Next()
			if err != nil {
				var tl *wire.TooLargeError
				switch {
				case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, wire.ErrBadLength):
				case errors.As(err, &tl):
					if tl.Len <= tl.Max || tl.Max != max {
						t.Fatalf("TooLargeError %+v with max %d", *tl, max)
					}
				default:
					t.Fatalf("unexpected error %T: %v", err, err)
				}
				// A promised frame is whole in the buffer: Next may refuse
				// it as too large, but cannot run out of bytes.
				if promised && !errors.As(err, &tl) {
					t.Fatalf("HasFrame promised a whole frame, Next failed: %v", err)
				}
				return
			}
			if len(got) < wire.HeaderLen {
				t.Fatalf("frame of %d bytes", len(got))
			}
			n := int(binary.BigEndian.Uint32(got[1:5]))
			if typ != got[0] || n+1 != len(got) || n-4 > max {
				t.Fatalf("type %q, length field %d, frame %d bytes, max %d", typ, n, len(got), max)
			}
			if !bytes.Equal(got, data[consumed:consumed+len(got)]) {
				t.Fatalf("frame at offset %d is not the input's bytes", consumed)
			}
			consumed += len(got)
		}
	})
}
