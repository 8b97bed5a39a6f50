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
	"syscall"
	"time"

	"github.com/pgone/pgone/bench/proc"
	"github.com/pgone/pgone/internal/pgtest"
)

// pgoneProcess is the pgone child of `pgxsuite up`.
type pgoneProcess struct {
	*proc.Child
	port, httpPort int
}

// startPgone writes the target's config into the cluster directory, starts
// `pgone serve` on free ports and waits until it answers a query. The log
// file starts with the config.
func startPgone(ctx context.Context, o upOptions, c *pgtest.Cluster, logger *log.Logger) (*pgoneProcess, error) {
	logPath := o.logFile
	if logPath == "" {
		logPath = "/dev/stderr"
	} else if err := os.WriteFile(logPath, nil, 0o644); err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(c.Dir, "pgone.yaml")
	p := &pgoneProcess{}
	start := func(port int) (*proc.Child, error) {
		var err error
		if p.httpPort, err = pgtest.FreePort(); err != nil {
			return nil, err
		}
		cfg := pgoneConfig(o, c, port, p.httpPort)
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
			return nil, err
		}
		if o.logFile != "" {
			if err := appendFile(o.logFile, cfg); err != nil {
				return nil, err
			}
		}
		return proc.Start("pgone", exec.Command(o.pgone, "serve", "--config", cfgPath), logPath, syscall.SIGTERM)
	}
	user, password, dbname := o.login()
	dsn := func(port int) string {
		return fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=%s sslmode=disable", port, user, password, dbname)
	}
	child, port, err := proc.StartOnFreePort(ctx, start, dsn, 30*time.Second)
	if err != nil {
		return nil, err
	}
	p.Child, p.port = child, port
	logger.Printf("pgone pid %d on 127.0.0.1:%d (%s)", p.Pid(), port, o.target)
	return p, nil
}

func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// stop sends SIGTERM (pgone drains clients for its shutdown_timeout of 5s)
// and SIGKILLs after 15s.
func (p *pgoneProcess) stop(logger *log.Logger) {
	if err := p.Stop(syscall.SIGTERM, 15*time.Second); err != nil {
		logger.Print(err)
		return
	}
	logger.Printf("stopped pgone pid %d", p.Pid())
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
