package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"runtime"

	"github.com/pgone/pgone/internal/rawconn"
)

func main() {
	core := flag.String("core", "goroutine", "goroutine, goroutine-raw, epoll, epoll-raw or txpool")
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	upstream := flag.String("upstream", "", "server address each client is relayed to")
	loops := flag.Int("loops", 1, "epoll: event loops (threads), each with its own listener")
	dsn := flag.String("dsn", "", "txpool: the servers' connection string (sslmode=disable); replaces -upstream")
	pool := flag.Int("pool", 20, "txpool: server connections")
	flag.Parse()
	if *upstream == "" && *dsn == "" {
		log.Fatal("relaycore: -upstream (or -dsn with -core txpool) is required")
	}
	var err error
	switch *core {
	case "txpool":
		err = serveTxpool(*listen, *dsn, *pool)
	case "goroutine", "goroutine-raw":
		err = serveGoroutines(*listen, *upstream, *core == "goroutine-raw")
	case "epoll", "epoll-raw":
		err = serveEpoll(*listen, *upstream, *loops, *core == "epoll-raw")
	default:
		err = fmt.Errorf("unknown core %q", *core)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "relaycore:", err)
		os.Exit(1)
	}
}

// serveGoroutines relays each client with two goroutines, each blocking in
// Read on one side and writing what it got to the other.
func serveGoroutines(listen, upstream string, raw bool) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			s, err := net.Dial("tcp", upstream)
			if err != nil {
				c.Close()
				return
			}
			if raw {
				c, s = rawconn.Wrap(c), rawconn.Wrap(s)
			}
			go pipe(s, c)
			pipe(c, s)
		}()
	}
}

// pipe copies from src to dst until either fails, then closes both.
func pipe(dst, src net.Conn) {
	buf := make([]byte, 16<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
}

// serveEpoll runs loops event loops, each locked to its own thread.
// With raw, the loops make their system calls unseen by the runtime.
func serveEpoll(listen, upstream string, loops int, raw bool) error {
	up, err := sockaddr(upstream)
	if err != nil {
		return err
	}
	if loops < 1 {
		loops = 1
	}
	runtime.GOMAXPROCS(loops)
	errc := make(chan error, loops)
	for i := 0; i < loops; i++ {
		l, err := newLoop(listen, up)
		if err != nil {
			return err
		}
		l.raw = raw
		go func() {
			runtime.LockOSThread()
			errc <- l.run()
		}()
	}
	return <-errc
}

// serveTxpool runs one transaction-pooling loop (txpool) on a thread of
// its own.
func serveTxpool(listen, dsn string, pool int) error {
	t, err := newTxpool(listen, dsn, pool)
	if err != nil {
		return err
	}
	runtime.GOMAXPROCS(1)
	runtime.LockOSThread()
	return t.run()
}
