//go:build linux

package main

import (
	"fmt"
	"net"
	"strconv"
	"syscall"
	"unsafe"
)

// loop is one event loop: its listener, its epoll set, and for each
// socket it serves the socket it relays to and what is still to be
// written to it.
type loop struct {
	epfd, lfd int
	upstream  syscall.Sockaddr
	peer      map[int]int
	// pending[fd] is what could not be written to fd yet; while it is not
	// empty, fd's peer is not read (backpressure) and fd waits for EPOLLOUT.
	pending map[int][]byte
	buf     []byte
	// raw makes the loop's system calls without telling Go's runtime
	// (syscall.RawSyscall): no entersyscall/exitsyscall, and above all no
	// sysmon retaking the loop's P while it sleeps in epoll_wait and
	// handing it back when it wakes, which at one client costs more than
	// the relaying itself.
	raw bool
}

func sockaddr(addr string) (*syscall.SockaddrInet4, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return nil, err
	}
	ip := net.ParseIP(host).To4()
	if ip == nil {
		return nil, fmt.Errorf("%q: want an IPv4 address", host)
	}
	sa := &syscall.SockaddrInet4{Port: p}
	copy(sa.Addr[:], ip)
	return sa, nil
}

// listenFD opens a non-blocking listening socket on listen, with
// SO_REUSEPORT so that each loop can have its own on one port.
func listenFD(listen string) (int, error) {
	sa, err := sockaddr(listen)
	if err != nil {
		return -1, err
	}
	lfd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	const soReusePort = 15 // SO_REUSEPORT
	for _, opt := range []int{syscall.SO_REUSEADDR, soReusePort} {
		if err := syscall.SetsockoptInt(lfd, syscall.SOL_SOCKET, opt, 1); err != nil {
			syscall.Close(lfd)
			return -1, err
		}
	}
	if err := syscall.Bind(lfd, sa); err != nil {
		syscall.Close(lfd)
		return -1, err
	}
	if err := syscall.Listen(lfd, 4096); err != nil {
		syscall.Close(lfd)
		return -1, err
	}
	return lfd, nil
}

func newLoop(listen string, upstream syscall.Sockaddr) (*loop, error) {
	lfd, err := listenFD(listen)
	if err != nil {
		return nil, err
	}
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	l := &loop{epfd: epfd, lfd: lfd, upstream: upstream, peer: map[int]int{}, pending: map[int][]byte{}, buf: make([]byte, 64<<10)}
	return l, l.ctl(syscall.EPOLL_CTL_ADD, lfd, syscall.EPOLLIN)
}

func (l *loop) ctl(op, fd int, events uint32) error {
	return syscall.EpollCtl(l.epfd, op, fd, &syscall.EpollEvent{Events: events, Fd: int32(fd)})
}

func (l *loop) run() error {
	events := make([]syscall.EpollEvent, 256)
	for {
		n, err := l.wait(events)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		for _, ev := range events[:n] {
			fd := int(ev.Fd)
			switch {
			case fd == l.lfd:
				l.accept()
			case ev.Events&syscall.EPOLLOUT != 0:
				l.flush(fd)
			default:
				l.relay(fd)
			}
		}
	}
}

// accept takes every waiting client and connects each to the upstream
// (a blocking connect: to a local server it is quick, and this is a
// micro-benchmark of the steady state, not of logins).
func (l *loop) accept() {
	for {
		c, _, err := syscall.Accept4(l.lfd, syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
		if err != nil {
			return
		}
		s, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err == nil {
			if err = syscall.Connect(s, l.upstream); err == nil {
				err = syscall.SetNonblock(s, true)
			}
		}
		if err != nil {
			syscall.Close(c)
			if s > 0 {
				syscall.Close(s)
			}
			continue
		}
		for _, fd := range []int{c, s} {
			syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
		}
		l.peer[c], l.peer[s] = s, c
		l.ctl(syscall.EPOLL_CTL_ADD, c, syscall.EPOLLIN)
		l.ctl(syscall.EPOLL_CTL_ADD, s, syscall.EPOLLIN)
	}
}

// relay reads what fd has and writes it to its peer; what the peer cannot
// take now waits in pending, and fd is not read again until it is gone.
func (l *loop) relay(fd int) {
	peer, ok := l.peer[fd]
	if !ok {
		return
	}
	n, err := l.read(fd, l.buf)
	if err == syscall.EAGAIN {
		return
	}
	if n <= 0 || err != nil {
		l.close(fd)
		return
	}
	w, err := l.write(peer, l.buf[:n])
	if err == syscall.EAGAIN {
		w, err = 0, nil
	}
	if err != nil {
		l.close(fd)
		return
	}
	if w < n {
		l.pending[peer] = append([]byte(nil), l.buf[w:n]...)
		l.ctl(syscall.EPOLL_CTL_MOD, fd, 0)
		l.ctl(syscall.EPOLL_CTL_MOD, peer, syscall.EPOLLIN|syscall.EPOLLOUT)
	}
}

// flush writes fd's pending bytes; once they are gone, fd's peer is read
// again.
func (l *loop) flush(fd int) {
	p := l.pending[fd]
	w, err := l.write(fd, p)
	if err == syscall.EAGAIN {
		return
	}
	if err != nil {
		l.close(fd)
		return
	}
	if w < len(p) {
		l.pending[fd] = p[w:]
		return
	}
	delete(l.pending, fd)
	l.ctl(syscall.EPOLL_CTL_MOD, fd, syscall.EPOLLIN)
	l.ctl(syscall.EPOLL_CTL_MOD, l.peer[fd], syscall.EPOLLIN)
}

// close closes fd and its peer.
func (l *loop) close(fd int) {
	peer := l.peer[fd]
	for _, x := range []int{fd, peer} {
		syscall.Close(x) // closing removes it from the epoll set
		delete(l.peer, x)
		delete(l.pending, x)
	}
}

// rawWaitMillis bounds a raw epoll_wait, so a loop that sleeps outside the
// runtime's sight still reaches a safe point (a garbage collection's
// stop-the-world waits for it) at least this often.
const rawWaitMillis = 50

func (l *loop) wait(events []syscall.EpollEvent) (int, error) {
	if !l.raw {
		return syscall.EpollWait(l.epfd, events, -1)
	}
	return rawWait(l.epfd, events)
}

func (l *loop) read(fd int, p []byte) (int, error) {
	if !l.raw {
		return syscall.Read(fd, p)
	}
	return rawRead(fd, p)
}

func (l *loop) write(fd int, p []byte) (int, error) {
	if !l.raw {
		return syscall.Write(fd, p)
	}
	return rawWrite(fd, p)
}

// rawWait is epoll_wait made without telling the runtime, bounded by
// rawWaitMillis.
func rawWait(epfd int, events []syscall.EpollEvent) (int, error) {
	n, _, errno := syscall.RawSyscall6(syscall.SYS_EPOLL_WAIT, uintptr(epfd),
		uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), rawWaitMillis, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// rawRead and rawWrite are read(2) and write(2) made without telling the
// runtime: on a non-blocking socket they never sleep.
func rawRead(fd int, p []byte) (int, error) {
	n, _, errno := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if errno != 0 {
		return -1, errno
	}
	return int(n), nil
}

func rawWrite(fd int, p []byte) (int, error) {
	n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if errno != 0 {
		return -1, errno
	}
	return int(n), nil
}
