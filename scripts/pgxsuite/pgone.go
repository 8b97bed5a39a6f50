package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/pgone/pgone/internal/pgtest"
)

// pgoneProcess is the pgone child of `pgxsuite up`.
type pgoneProcess struct {
	port     int
	httpPort int
	cmd      *exec.Cmd
	done     chan struct{} // closed once the child has exited
}

// startPgone writes the target's config into the cluster directory, starts
// `pgone serve` on free ports and waits until it answers a query.
func startPgone(ctx context.Context, o upOptions, c *pgtest.Cluster, logger *log.Logger) (*pgoneProcess, error) {
	port, err := pgtest.FreePort()
	if err != nil {
		return nil, err
	}
	httpPort, err := pgtest.FreePort()
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(c.Dir, "pgone.yaml")
	cfg := pgoneConfig(o, c, port, httpPort)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	var out io.Writer = os.Stderr
	if o.logFile != "" {
		f, err := os.Create(o.logFile)
		if err != nil {
			return nil, err
		}
		defer f.Close() // the child has its own descriptor
		fmt.Fprint(f, cfg)
		out = f
	}
	cmd := exec.Command(o.pgone, "serve", "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = out, out
	// If this process dies without stopping pgone, pgone gets SIGTERM.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	p := &pgoneProcess{port: port, httpPort: httpPort, cmd: cmd, done: make(chan struct{})}
	if err := p.start(); err != nil {
		return nil, fmt.Errorf("start pgone: %w", err)
	}
	logger.Printf("pgone pid %d on 127.0.0.1:%d (%s)", cmd.Process.Pid, port, o.target)
	if err := waitAccepting(ctx, o, p); err != nil {
		p.stop(logger)
		return nil, err
	}
	return p, nil
}

// start runs the child from a goroutine locked to its OS thread: Linux sends
// the parent-death signal when the forking thread exits, so that thread must
// live as long as the child.
func (p *pgoneProcess) start() error {
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := p.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = p.cmd.Wait()
		close(p.done)
	}()
	return <-started
}

func (p *pgoneProcess) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM (pgone drains clients for its shutdown_timeout of 5s)
// and SIGKILLs after 15s.
func (p *pgoneProcess) stop(logger *log.Logger) {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		logger.Printf("stopped pgone pid %d", p.cmd.Process.Pid)
		return
	case <-time.After(15 * time.Second):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	logger.Printf("killed pgone pid %d: no exit within 15s of SIGTERM", p.cmd.Process.Pid)
}

// saveMetrics writes pgone's /metrics to path: the route and error counters
// say where the suite's requests went.
func (p *pgoneProcess) saveMetrics(path string) error {
	client := http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", p.httpPort))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	return os.WriteFile(path, body, 0o644)
}
