//go:build linux

package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// txpool is the socket core with the least protocol work a transaction
// pooler needs (issue 14's second question: does an event loop leave room
// for a pooler's work, or only for relaying?): one raw epoll loop (see
// loop.raw), a pool of server connections opened at start, and for every
// client: answer its startup itself (no authentication: this measures the
// steady state), and from its first byte of a transaction to the server's
// ReadyForQuery with status idle lend it one server connection, scanning
// the server's frames for that ReadyForQuery and the client's for
// Terminate. No statement is parsed, nothing is routed, nothing is
// counted: pgone does all of that on top. Unnamed statements only (-M
// simple and extended); a client waiting for a server is queued and not
// read until it gets one. A server connection that dies is replaced when
// a client next finds none free (a blocking login in the loop: the bench
// closes servers only between its measurements).
type txpool struct {
	epfd, lfd int
	dsn       string
	size      int // server connections to keep
	servers   int // server connections open
	conns     map[int]*tpConn
	free      []*tpConn
	queue     []*tpConn
	hello     []byte // the startup reply: AuthenticationOk, ParameterStatus..., BackendKeyData, ReadyForQuery
	buf       []byte
}

// tpConn is one socket of the loop, a client's or a server's.
type tpConn struct {
	fd     int
	server bool
	// peer is the client's server while it holds one, and the server's
	// client while it is lent.
	peer *tpConn
	// in is what a client sent that has not gone to a server yet: its
	// startup packet, or its request while it waits for a server.
	in      []byte
	started bool
	queued  bool
	// out is what could not be written to this socket yet; while it is
	// not empty, blocked (the socket whose bytes these are) is not read.
	out     []byte
	blocked *tpConn
	frames  frameScan
}

// frameScan follows the frame boundaries of one direction of a
// connection across reads.
type frameScan struct {
	hdr  [5]byte
	nhdr int // header bytes of the current frame seen (5: in its body)
	left int // body bytes of the current frame still to come
	// status is the body's first byte of the last ReadyForQuery.
	status byte
}

// scan walks p. It reports whether p ends on a frame boundary, the type of
// the last frame p completes (0 if none), and whether p starts a Terminate.
func (f *frameScan) scan(p []byte) (boundary bool, last byte, terminate bool) {
	for len(p) > 0 {
		if f.nhdr < 5 {
			n := copy(f.hdr[f.nhdr:], p)
			f.nhdr += n
			p = p[n:]
			if f.nhdr < 5 {
				break
			}
			f.left = int(binary.BigEndian.Uint32(f.hdr[1:5])) - 4
			terminate = terminate || f.hdr[0] == 'X'
		}
		if f.left > 0 && len(p) > 0 {
			if f.hdr[0] == 'Z' {
				f.status = p[0]
			}
			n := min(f.left, len(p))
			f.left -= n
			p = p[n:]
		}
		if f.left <= 0 {
			last, f.nhdr, f.left = f.hdr[0], 0, 0
		}
	}
	return f.nhdr == 0, last, terminate
}

// newTxpool opens pool server connections to dsn and listens on listen.
func newTxpool(listen, dsn string, pool int) (*txpool, error) {
	t := &txpool{dsn: dsn, size: pool, conns: map[int]*tpConn{}, buf: make([]byte, 64<<10)}
	var err error
	if t.epfd, err = syscall.EpollCreate1(syscall.EPOLL_CLOEXEC); err != nil {
		return nil, err
	}
	for i := 0; i < pool; i++ {
		if err := t.dial(); err != nil {
			return nil, err
		}
	}
	if t.lfd, err = listenFD(listen); err != nil {
		return nil, err
	}
	return t, t.ctl(syscall.EPOLL_CTL_ADD, t.lfd, syscall.EPOLLIN)
}

// dial opens one more server connection into the free list.
func (t *txpool) dial() error {
	fd, params, err := dialServer(t.dsn)
	if err != nil {
		return err
	}
	if t.hello == nil {
		t.hello = hello(params)
	}
	s := &tpConn{fd: fd, server: true}
	t.conns[fd] = s
	t.free = append(t.free, s)
	t.servers++
	return t.ctl(syscall.EPOLL_CTL_ADD, fd, syscall.EPOLLIN)
}

// dialServer logs in to dsn with pgconn and takes the socket over: a
// non-blocking descriptor of its own, and the server's ParameterStatus.
func dialServer(dsn string) (int, map[string]string, error) {
	pc, err := pgconn.Connect(context.Background(), dsn)
	if err != nil {
		return -1, nil, err
	}
	hj, err := pc.Hijack()
	if err != nil {
		return -1, nil, err
	}
	defer hj.Conn.Close()
	tc, ok := hj.Conn.(*net.TCPConn)
	if !ok {
		return -1, nil, fmt.Errorf("server connection is %T, want TCP (sslmode=disable)", hj.Conn)
	}
	f, err := tc.File()
	if err != nil {
		return -1, nil, err
	}
	fd, err := syscall.Dup(int(f.Fd()))
	f.Close()
	if err != nil {
		return -1, nil, err
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		return -1, nil, err
	}
	return fd, hj.ParameterStatuses, nil
}

// hello is what a client gets for its startup packet.
func hello(params map[string]string) []byte {
	msg := func(b []byte, typ byte, body []byte) []byte {
		b = append(b, typ)
		b = binary.BigEndian.AppendUint32(b, uint32(len(body)+4))
		return append(b, body...)
	}
	b := msg(nil, 'R', []byte{0, 0, 0, 0})
	for k, v := range params {
		b = msg(b, 'S', append(append(append([]byte(k), 0), v...), 0))
	}
	b = msg(b, 'K', binary.BigEndian.AppendUint32([]byte{0, 0, 0, 1}, uint32(os.Getpid())))
	return msg(b, 'Z', []byte{'I'})
}

func (t *txpool) ctl(op, fd int, events uint32) error {
	return syscall.EpollCtl(t.epfd, op, fd, &syscall.EpollEvent{Events: events, Fd: int32(fd)})
}

func (t *txpool) run() error {
	events := make([]syscall.EpollEvent, 256)
	for {
		n, err := rawWait(t.epfd, events)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		for _, ev := range events[:n] {
			fd := int(ev.Fd)
			if fd == t.lfd {
				t.accept()
				continue
			}
			c := t.conns[fd]
			switch {
			case c == nil:
			case ev.Events&syscall.EPOLLOUT != 0:
				t.flush(c)
			case c.server:
				t.fromServer(c)
			default:
				t.fromClient(c)
			}
		}
	}
}

func (t *txpool) accept() {
	for {
		fd, _, err := syscall.Accept4(t.lfd, syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
		if err != nil {
			return
		}
		_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
		t.conns[fd] = &tpConn{fd: fd}
		_ = t.ctl(syscall.EPOLL_CTL_ADD, fd, syscall.EPOLLIN)
	}
}

// fromClient reads what a client sent: its startup, or a request.
func (t *txpool) fromClient(c *tpConn) {
	n, err := rawRead(c.fd, t.buf)
	if err == syscall.EAGAIN {
		return
	}
	if n <= 0 || err != nil {
		t.close(c)
		return
	}
	p := t.buf[:n]
	if !c.started {
		c.in = append(c.in, p...)
		t.startup(c)
		return
	}
	t.request(c, p)
}

// request takes what a started client sent: to its server, or to the next
// free one; a Terminate closes the client.
func (t *txpool) request(c *tpConn, p []byte) {
	if _, _, terminate := c.frames.scan(p); terminate {
		t.close(c)
		return
	}
	if c.peer != nil {
		t.send(c.peer, p, c)
		return
	}
	c.in = append(c.in, p...)
	t.lend(c)
}

// startup answers the client's startup packets once they are whole: no
// to SSL and GSS encryption, the hello to StartupMessage.
func (t *txpool) startup(c *tpConn) {
	for len(c.in) >= 8 {
		n := int(binary.BigEndian.Uint32(c.in))
		if n < 8 || n > 10000 {
			t.close(c)
			return
		}
		if len(c.in) < n {
			return
		}
		code := binary.BigEndian.Uint32(c.in[4:])
		c.in = c.in[n:]
		switch code {
		case 80877103, 80877104: // SSLRequest, GSSENCRequest
			t.send(c, []byte{'N'}, nil)
		case 196608: // protocol 3.0
			c.started = true
			t.send(c, t.hello, nil)
			if rest := c.in; len(rest) > 0 {
				c.in = nil
				t.request(c, rest)
			}
			return
		default:
			t.close(c)
			return
		}
	}
}

// lend gives the client a free server and sends it what the client has
// sent so far, or queues the client and stops reading it.
func (t *txpool) lend(c *tpConn) {
	for len(t.free) == 0 && t.servers < t.size {
		if err := t.dial(); err != nil {
			fmt.Fprintln(os.Stderr, "relaycore: txpool:", err)
			break
		}
	}
	if len(t.free) == 0 && t.servers == 0 {
		t.close(c) // no server to wait for
		return
	}
	if len(t.free) == 0 {
		if !c.queued {
			c.queued = true
			t.queue = append(t.queue, c)
			_ = t.ctl(syscall.EPOLL_CTL_MOD, c.fd, 0)
		}
		return
	}
	s := t.free[len(t.free)-1]
	t.free = t.free[:len(t.free)-1]
	c.peer, s.peer = s, c
	s.frames = frameScan{}
	in := c.in
	c.in = c.in[:0]
	t.send(s, in, c)
}

// fromServer relays a server's reply to its client; at the reply's
// ReadyForQuery with status idle the server goes back to the pool.
func (t *txpool) fromServer(s *tpConn) {
	n, err := rawRead(s.fd, t.buf)
	if err == syscall.EAGAIN {
		return
	}
	if n <= 0 || err != nil {
		t.close(s)
		return
	}
	c := s.peer
	if c == nil {
		return // a notice to an idle server connection
	}
	p := t.buf[:n]
	boundary, last, _ := s.frames.scan(p)
	t.send(c, p, s)
	if boundary && last == 'Z' && s.frames.status == 'I' && s.peer == c {
		t.release(s)
	}
}

// release returns s to the pool, or lends it to the first queued client.
func (t *txpool) release(s *tpConn) {
	c := s.peer
	c.peer, s.peer = nil, nil
	if c.blocked == s {
		c.blocked = nil
		_ = t.ctl(syscall.EPOLL_CTL_MOD, s.fd, syscall.EPOLLIN)
	}
	t.free = append(t.free, s)
	for len(t.queue) > 0 && len(t.free) > 0 {
		next := t.queue[0]
		t.queue = t.queue[1:]
		next.queued = false
		events := uint32(syscall.EPOLLIN)
		if len(next.out) > 0 {
			events |= syscall.EPOLLOUT
		}
		_ = t.ctl(syscall.EPOLL_CTL_MOD, next.fd, events)
		t.lend(next)
	}
}

// send writes p to dst; what dst cannot take now waits in dst.out, and src
// is not read until it is gone.
func (t *txpool) send(dst *tpConn, p []byte, src *tpConn) {
	if len(p) == 0 {
		return
	}
	if len(dst.out) > 0 {
		dst.out = append(dst.out, p...)
		return
	}
	w, err := rawWrite(dst.fd, p)
	if err == syscall.EAGAIN {
		w, err = 0, nil
	}
	if err != nil {
		t.close(dst)
		return
	}
	if w < len(p) {
		dst.out = append(dst.out, p[w:]...)
		_ = t.ctl(syscall.EPOLL_CTL_MOD, dst.fd, syscall.EPOLLIN|syscall.EPOLLOUT)
		if src != nil {
			dst.blocked = src
			_ = t.ctl(syscall.EPOLL_CTL_MOD, src.fd, 0)
		}
	}
}

// flush writes what waits for c; once it is gone, the socket it came from
// is read again.
func (t *txpool) flush(c *tpConn) {
	w, err := rawWrite(c.fd, c.out)
	if err == syscall.EAGAIN {
		return
	}
	if err != nil {
		t.close(c)
		return
	}
	c.out = c.out[w:]
	if len(c.out) > 0 {
		return
	}
	c.out = nil
	events := uint32(syscall.EPOLLIN)
	if c.queued {
		events = 0
	}
	_ = t.ctl(syscall.EPOLL_CTL_MOD, c.fd, events)
	if b := c.blocked; b != nil {
		c.blocked = nil
		if t.conns[b.fd] == b && !b.queued { // not closed meanwhile (its fd may be another's now)
			_ = t.ctl(syscall.EPOLL_CTL_MOD, b.fd, syscall.EPOLLIN)
		}
	}
}

// close closes c. A client's server mid-transaction is closed with it (it
// cannot go back to the pool dirty), as is a lent server's client.
func (t *txpool) close(c *tpConn) {
	if t.conns[c.fd] != c {
		return
	}
	delete(t.conns, c.fd)
	syscall.Close(c.fd)
	if c.server {
		t.servers--
	}
	for i, x := range t.queue {
		if x == c {
			t.queue = append(t.queue[:i], t.queue[i+1:]...)
			break
		}
	}
	for i, x := range t.free {
		if x == c {
			t.free = append(t.free[:i], t.free[i+1:]...)
			break
		}
	}
	if p := c.peer; p != nil {
		c.peer, p.peer = nil, nil
		t.close(p)
	}
}
