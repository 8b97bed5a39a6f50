package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
)

// Kill stops redis-server at once (SIGKILL, no shutdown), as a crash
// would, keeping its directory so Restart can start it again. It is a
// no-op when it is not running.
func (r *Redis) Kill() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc == nil {
		return nil
	}
	_ = r.proc.cmd.Process.Kill()
	<-r.proc.done
	r.proc = nil
	return nil
}

// Restart starts redis-server again on the same address after Kill, and
// returns once it answers PING. Without persistence it starts empty.
func (r *Redis) Restart(ctx context.Context) error {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return redisMissing
	}
	r.mu.Lock()
	running, dir := r.proc != nil, r.dir
	r.mu.Unlock()
	if running {
		return errors.New("pgtest: redis-server is running; Kill it first")
	}
	if dir == "" {
		return errors.New("pgtest: redis-server was stopped for good")
	}
	_, p, err := net.SplitHostPort(r.Addr)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	return r.startAt(ctx, bin, port)
}

// Pid is redis-server's process id, 0 when it is not running.
func (r *Redis) Pid() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc == nil {
		return 0
	}
	return r.proc.Pid()
}
