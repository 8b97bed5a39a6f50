package proc

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgone/pgone/internal/pgtest"
)

// StartOnFreePort starts a child with start on a free port and waits up to
// timeout until dsn(port) accepts a login and SELECT 1. If the child dies
// early (another process may have taken the port) it tries again on a new
// port, three times in all; a child that runs but never accepts a login is
// not retried.
func StartOnFreePort(ctx context.Context, start func(port int) (*Child, error), dsn func(port int) string, timeout time.Duration) (*Child, int, error) {
	var lastErr error
	for attempt := 1; attempt <= 3; attempt++ {
		port, err := pgtest.FreePort()
		if err != nil {
			return nil, 0, err
		}
		c, err := start(port)
		if err != nil {
			return nil, 0, err
		}
		err = WaitLogin(ctx, c, dsn(port), timeout)
		if err == nil {
			return c, port, nil
		}
		_ = c.Stop(syscall.SIGKILL, 5*time.Second)
		lastErr = fmt.Errorf("port %d: %w\n%s", port, err, c.LogTail())
		if ctx.Err() != nil || !c.Exited() {
			break
		}
	}
	return nil, 0, lastErr
}

// WaitLogin polls until dsn accepts a login and SELECT 1, c exits, or
// timeout passes.
func WaitLogin(ctx context.Context, c *Child, dsn string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		if c.Exited() {
			return fmt.Errorf("%s exited: %v", c.Name, c.Err())
		}
		err := Ping(ctx, dsn)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not accepting logins: %w", c.Name, errors.Join(ctx.Err(), err))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Ping logs in to dsn on a new connection and runs SELECT 1.
func Ping(ctx context.Context, dsn string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, "SELECT 1").ReadAll()
	return err
}
