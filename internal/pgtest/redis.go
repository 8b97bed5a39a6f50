package pgtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

const redisMissing = notInstalledError("redis-server not found in PATH; on Debian: apt-get install -y redis-server (or run make deps)")

// Redis is a running redis-server without persistence.
type Redis struct {
	Addr string // 127.0.0.1:port

	dir     string
	logFile string

	mu   sync.Mutex
	proc *Process // nil once stopped
}

// StartRedis starts redis-server on 127.0.0.1 and a free port in a temp
// directory, with persistence off, and waits until it answers PING.
func StartRedis(ctx context.Context) (r *Redis, err error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, redisMissing
	}
	dir, err := os.MkdirTemp(os.TempDir(), "pgone-pgtest-redis-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	r = &Redis{dir: dir, logFile: filepath.Join(dir, "redis.log")}
	defer func() {
		if err != nil {
			_ = r.Stop()
			r = nil
		}
	}()
	for attempt := 1; ; attempt++ {
		err = r.start(ctx, bin)
		if errors.Is(err, errAddrInUse) && attempt < portAttempts {
			continue
		}
		return r, err
	}
}

func (r *Redis) start(ctx context.Context, bin string) error {
	port, err := FreePort()
	if err != nil {
		return err
	}
	return r.startAt(ctx, bin, port)
}

// startAt starts redis-server on port and waits for its PING.
func (r *Redis) startAt(ctx context.Context, bin string, port int) error {
	r.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	offset := fileSize(r.logFile)
	logFile, err := os.OpenFile(r.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	cmd := exec.Command(bin,
		"--bind", "127.0.0.1", "--port", strconv.Itoa(port),
		"--save", "", "--appendonly", "no",
		"--dir", r.dir, "--daemonize", "no", "--logfile", "")
	cmd.Dir = r.dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	p, err := StartProcess(cmd)
	logFile.Close()
	if err != nil {
		return fmt.Errorf("pgtest: start redis-server: %w", err)
	}
	r.mu.Lock()
	r.proc = p
	r.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	var lastErr error
	for {
		if p.Exited() {
			if logSays(r.logFile, offset, "Address already in use") {
				return errAddrInUse
			}
			return fmt.Errorf("pgtest: redis-server exited before answering PING (%v)\n%s", p.err, logTail(r.logFile, offset))
		}
		if lastErr = ping(ctx, r.Addr); lastErr == nil {
			return nil
		}
		select {
		case <-p.done:
		case <-ctx.Done():
			return fmt.Errorf("pgtest: redis-server on %s not answering PING: %w (last error: %v)\n%s", r.Addr, ctx.Err(), lastErr, logTail(r.logFile, offset))
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// ping sends a RESP PING and expects +PONG.
func ping(ctx context.Context, addr string) error {
	d := net.Dialer{Timeout: time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

// Stop shuts redis-server down (SIGTERM, SIGKILL after 30s) and removes its
// directory. It is idempotent and safe from several goroutines.
func (r *Redis) Stop() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	if r.proc != nil {
		if err := r.proc.Stop(syscall.SIGTERM, stopGrace); err != nil {
			errs = append(errs, fmt.Errorf("pgtest: stop redis-server: %w", err))
		}
		r.proc = nil
	}
	if r.dir != "" {
		if err := os.RemoveAll(r.dir); err != nil {
			errs = append(errs, fmt.Errorf("pgtest: %w", err))
		}
		r.dir = ""
	}
	return errors.Join(errs...)
}
