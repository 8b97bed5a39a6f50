package wire

import (
	"bufio"
	"io"
	"sync"
	"sync/atomic"

	"github.com/pgone/pgone/internal/rawconn"
)

// Buffered is the buffered stream a Reader frames: a *bufio.Reader, or a
// LentBuffer for client connections.
type Buffered interface {
	io.Reader
	Peek(n int) ([]byte, error)
	Discard(n int) (int, error)
	Buffered() int
	Size() int
}

// lentReader is a source that reads into a buffer only once data is there
// (rawconn.Conn).
type lentReader interface {
	ReadLent(l rawconn.Lender) (int, error)
}

// BufferPool holds the read buffers of LentBuffers, all of one size.
type BufferPool struct {
	size int
	pool sync.Pool
	lent atomic.Int64
}

// Lent is the number of buffers LentBuffers hold now.
func (bp *BufferPool) Lent() int { return int(bp.lent.Load()) }

// NewBufferPool returns a pool of size-byte buffers.
func NewBufferPool(size int) *BufferPool {
	bp := &BufferPool{size: size}
	bp.pool.New = func() any {
		b := make([]byte, size)
		return &b
	}
	return bp
}

// LentBuffer is a bufio.Reader whose memory goes back to a BufferPool
// whenever it is empty and the stream has nothing to read: a client that
// sits idle between queries holds no read buffer. From a source that cannot
// wait without a buffer (a TLS conn) it keeps its buffer, as bufio does.
//
// A slice from Peek is valid only until the next call that reads (Peek
// past what is buffered, Read, Discard past it): after that its memory may
// belong to another LentBuffer.
type LentBuffer struct {
	src  io.Reader
	lent lentReader // src, when it can lend; nil otherwise
	pool *BufferPool
	held *[]byte // from pool; nil when none is held
	buf  []byte  // *held, or nil
	r, w int
	err  error
}

// NewLentBuffer returns a buffer reading src with buffers from pool.
func NewLentBuffer(src io.Reader, pool *BufferPool) *LentBuffer {
	b := &LentBuffer{src: src, pool: pool}
	if lr, ok := src.(lentReader); ok {
		b.lent = lr
	}
	return b
}

// Lend gives the source the buffer to read into when it has data. Only an
// empty LentBuffer reads this way, so the whole buffer is free.
func (b *LentBuffer) Lend() []byte {
	if b.held == nil {
		b.held = b.pool.pool.Get().(*[]byte)
		b.buf = *b.held
		b.pool.lent.Add(1)
	}
	return b.buf
}

// Reclaim gives the buffer back to the pool while the source waits.
func (b *LentBuffer) Reclaim() {
	if b.held != nil {
		b.pool.pool.Put(b.held)
		b.held, b.buf = nil, nil
		b.pool.lent.Add(-1)
	}
}

// Release gives the buffer back for good, dropping what it holds unread:
// the connection is done, or is wrapped in TLS. Slices from Peek must not be
// used after it.
func (b *LentBuffer) Release() {
	b.r, b.w = 0, 0
	b.Reclaim()
}

// Size is the buffer's size: the largest Peek.
func (b *LentBuffer) Size() int { return b.pool.size }

// Buffered is the number of bytes read and not yet consumed.
func (b *LentBuffer) Buffered() int { return b.w - b.r }

// fill reads more into the buffer once.
func (b *LentBuffer) fill() {
	if b.r == b.w {
		b.r, b.w = 0, 0
		if b.lent != nil {
			n, err := b.lent.ReadLent(b)
			b.w, b.err = n, err
			return
		}
	}
	b.Lend()
	if b.r > 0 {
		copy(b.buf, b.buf[b.r:b.w])
		b.w -= b.r
		b.r = 0
	}
	for range 100 {
		n, err := b.src.Read(b.buf[b.w:])
		b.w += n
		if err != nil {
			b.err = err
			return
		}
		if n > 0 {
			return
		}
	}
	b.err = io.ErrNoProgress
}

func (b *LentBuffer) readErr() error {
	err := b.err
	b.err = nil
	return err
}

// Peek returns the next n bytes without consuming them, reading as needed.
func (b *LentBuffer) Peek(n int) ([]byte, error) {
	if n < 0 {
		return nil, bufio.ErrNegativeCount
	}
	for b.w-b.r < n && b.w-b.r < b.pool.size && b.err == nil {
		b.fill()
	}
	if n > b.pool.size {
		return b.buf[b.r:b.w], bufio.ErrBufferFull
	}
	var err error
	if avail := b.w - b.r; avail < n {
		n = avail
		if err = b.readErr(); err == nil {
			err = bufio.ErrBufferFull
		}
	}
	return b.buf[b.r : b.r+n], err
}

// Discard skips the next n bytes, reading as needed.
func (b *LentBuffer) Discard(n int) (int, error) {
	if n < 0 {
		return 0, bufio.ErrNegativeCount
	}
	discarded := 0
	for {
		skip := min(b.w-b.r, n-discarded)
		b.r += skip
		discarded += skip
		if discarded == n {
			return n, nil
		}
		if b.err != nil {
			return discarded, b.readErr()
		}
		b.fill()
	}
}

// Read reads what is buffered, or reads once from the source.
func (b *LentBuffer) Read(p []byte) (int, error) {
	if len(p) == 0 {
		if b.Buffered() > 0 {
			return 0, nil
		}
		return 0, b.readErr()
	}
	if b.r == b.w {
		if b.err != nil {
			return 0, b.readErr()
		}
		if len(p) >= b.pool.size {
			// Empty and a large read: straight into p, no buffer needed.
			n, err := b.src.Read(p)
			b.err = err
			return n, b.readErr()
		}
		b.fill()
		if b.r == b.w {
			return 0, b.readErr()
		}
	}
	n := copy(p, b.buf[b.r:b.w])
	b.r += n
	return n, nil
}

var (
	_ Buffered       = (*bufio.Reader)(nil)
	_ Buffered       = (*LentBuffer)(nil)
	_ rawconn.Lender = (*LentBuffer)(nil)
	_ lentReader     = (*rawconn.Conn)(nil)
)
