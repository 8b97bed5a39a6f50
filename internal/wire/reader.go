package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// HeaderLen is the length of a message header: a type byte and an int32 length.
const HeaderLen = 5

// ErrBadLength reports a length field below 4, which no message can have.
var ErrBadLength = errors.New("invalid message length")

// TooLargeError reports a message longer than the reader accepts.
type TooLargeError struct {
	Type byte
	Len  int
	Max  int
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("message of type %q is %d bytes, over the limit of %d", e.Type, e.Len, e.Max)
}

// Reader reads whole frames (type byte, length, body) from a buffered
// stream (a *bufio.Reader or a LentBuffer).
type Reader struct {
	br      Buffered
	max     int
	scratch []byte
	broken  bool
}

// NewReader returns a Reader that refuses bodies longer than maxBody bytes.
// maxBody <= 0 means no limit beyond the int32 length field.
func NewReader(br Buffered, maxBody int) *Reader {
	return &Reader{br: br, max: maxBody}
}

// SetMax changes the body limit (for a reloaded config).
func (r *Reader) SetMax(maxBody int) { r.max = maxBody }

// Next returns the next message's type and its whole frame, header included.
// The frame aliases internal buffers: it is valid only until the next call.
func (r *Reader) Next() (byte, []byte, error) {
	hdr, err := r.br.Peek(HeaderLen)
	if err != nil {
		if len(hdr) > 0 && errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	typ := hdr[0]
	n := int(int32(binary.BigEndian.Uint32(hdr[1:])))
	if n < 4 {
		return typ, nil, ErrBadLength
	}
	if r.max > 0 && n-4 > r.max {
		return typ, nil, &TooLargeError{Type: typ, Len: n - 4, Max: r.max}
	}
	total := 1 + n
	if total <= r.br.Size() {
		frame, err := r.br.Peek(total)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return typ, nil, err
		}
		// Discard only advances the read index: frame stays intact until the next read.
		_, _ = r.br.Discard(total)
		return typ, frame, nil
	}
	frame, err := r.readLarge(total)
	if err != nil {
		r.broken = true
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return typ, nil, err
	}
	if cap(r.scratch) > 1<<20 {
		r.scratch = nil // do not keep a huge buffer for the rest of the session
	}
	return typ, frame, nil
}

// largeStart is the first buffer size for a frame longer than the read
// buffer; it grows largeGrowth times each time it fills, and to the whole
// frame once largeEager bytes have arrived.
const (
	largeStart  = 64 << 10
	largeGrowth = 4
	largeEager  = 16 << 20
)

// readLarge reads a whole frame of total bytes past the read buffer into
// r.scratch. The buffer grows as the bytes arrive, never to more than
// largeGrowth times what has arrived: a length field alone, from a peer that
// then stalls or lies, cannot make the reader allocate it. Growing by 4
// keeps the extra copies under a third of the frame. Past largeEager bytes
// the buffer becomes the whole frame at once (PostgreSQL, after
// authentication, allocates a message's declared length): a peer must send
// 16 MiB to make the reader allocate up to its limit, and a 100 MB query
// costs 116 MB at its peak instead of 164 MB (64 MB copied into 100 MB).
func (r *Reader) readLarge(total int) ([]byte, error) {
	buf := r.scratch[:0]
	if cap(buf) < min(total, largeStart) {
		buf = make([]byte, 0, min(total, largeStart))
	}
	for len(buf) < total {
		if len(buf) == cap(buf) {
			size := min(total, largeGrowth*cap(buf))
			if len(buf) >= largeEager {
				size = total
			}
			next := make([]byte, len(buf), size)
			copy(next, buf)
			buf = next
		}
		n, err := io.ReadFull(r.br, buf[len(buf):min(cap(buf), total)])
		buf = buf[:len(buf)+n]
		if err != nil {
			return nil, err
		}
	}
	r.scratch = buf
	return buf, nil
}

// HasFrame reports whether a whole next frame is already buffered, so reading
// it will not block. The relay flushes its writer when this is false.
func (r *Reader) HasFrame() bool {
	n, ok := r.bufferedLen()
	return ok && n >= 4 && 1+n <= r.br.Buffered()
}

// bufferedLen returns the next frame's length field if its header is
// buffered.
func (r *Reader) bufferedLen() (int, bool) {
	if r.br.Buffered() < HeaderLen {
		return 0, false
	}
	hdr, _ := r.br.Peek(HeaderLen)
	return int(int32(binary.BigEndian.Uint32(hdr[1:]))), true
}

// WaitHeader reads until the next frame's header is buffered. An error
// (a deadline, say) leaves the stream intact, unlike one inside Next.
func (r *Reader) WaitHeader() error {
	_, err := r.br.Peek(HeaderLen)
	return err
}

// Spans reports whether the next frame is known (its header is buffered)
// to be larger than the buffer, so reading it goes past what one fill holds:
// a read deadline that fires inside it would break the stream.
func (r *Reader) Spans() bool {
	n, ok := r.bufferedLen()
	return ok && 1+n > r.br.Size()
}

// Broken reports whether a read failed in the middle of a frame, so the
// stream is no longer at a message boundary and must not be reused.
func (r *Reader) Broken() bool { return r.broken }

// Buffered reports how many bytes are buffered and not yet returned.
func (r *Reader) Buffered() int { return r.br.Buffered() }

// Body returns the frame without its 5-byte header.
func Body(frame []byte) []byte { return frame[HeaderLen:] }
