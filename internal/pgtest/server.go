package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

const (
	// SuperUser is the bootstrap superuser of every cluster.
	SuperUser = "postgres"
	// SuperPassword is SuperUser's password (TCP logins use scram-sha-256).
	SuperPassword = "postgres"

	readyTimeout = 60 * time.Second
	stopGrace    = 30 * time.Second
	portAttempts = 3
)

// Server is one running postgres process. Host, Port, DataDir and LogFile
// do not change after StartCluster returns; Start and Stop are safe to call
// from several goroutines.
type Server struct {
	Host    string
	Port    int
	DataDir string
	LogFile string // the server's stderr: every log line, across restarts

	bindir string
	acct   account
	dir    string // the cluster directory: working directory and HOME
	logf   func(format string, args ...any)

	mu   sync.Mutex
	proc *Process // nil when stopped
}

// DSN returns a keyword/value connection string for this server.
func (s *Server) DSN(user, password, dbname string) string {
	return fmt.Sprintf("host=%s port=%d user=%s password=%s dbname=%s sslmode=disable",
		s.Host, s.Port, quoteDSN(user), quoteDSN(password), quoteDSN(dbname))
}

// quoteDSN quotes a keyword/value connection string value only when needed.
func quoteDSN(v string) string {
	if v != "" && !strings.ContainsAny(v, " \t\n'\\=") {
		return v
	}
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "'" + r.Replace(v) + "'"
}

// Start starts the server again on the same port and data directory and
// waits until it accepts connections. It is a no-op if the server runs.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil && !s.proc.Exited() {
		return nil
	}
	s.proc = nil
	return s.startLocked(ctx)
}

// Stop shuts the server down fast (SIGINT to its postmaster: clients are
// disconnected, then a shutdown checkpoint), waits for the exit and SIGKILLs
// after 30s. It is a no-op if the server is not running.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proc
	if p == nil {
		return nil
	}
	s.proc = nil
	start := time.Now()
	if err := p.Stop(syscall.SIGINT, stopGrace); err != nil {
		return fmt.Errorf("pgtest: stop postgres on port %d: %v", s.Port, err)
	}
	s.logf("pgtest: stopped postgres on port %d in %s", s.Port, time.Since(start).Round(time.Millisecond))
	return nil
}

// Pid returns the postmaster's pid, or 0 if the server is not running.
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil || s.proc.Exited() {
		return 0
	}
	return s.proc.cmd.Process.Pid
}

// startOnFreePort starts a new server on a free port, retrying with another
// port if one is taken between FreePort and the server's bind.
func (s *Server) startOnFreePort(ctx context.Context) error {
	for attempt := 1; ; attempt++ {
		port, err := FreePort()
		if err != nil {
			return err
		}
		s.Port = port
		// -p on the command line is what counts; keep the file truthful for
		// anyone starting the data directory by hand.
		if err := appendConf(filepath.Join(s.DataDir, "postgresql.conf"), [][2]string{{"port", strconv.Itoa(port)}}); err != nil {
			return err
		}
		err = s.Start(ctx)
		if errors.Is(err, errAddrInUse) && attempt < portAttempts {
			s.logf("pgtest: port %d was taken, retrying", port)
			continue
		}
		return err
	}
}

func (s *Server) startLocked(ctx context.Context) error {
	start := time.Now()
	offset := fileSize(s.LogFile)
	logFile, err := os.OpenFile(s.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("pgtest: open server log: %w", err)
	}
	// Not CommandContext: ctx bounds the start, not the server's life.
	cmd := s.acct.command(context.Background(), s.dir, filepath.Join(s.bindir, "postgres"), "-D", s.DataDir, "-p", strconv.Itoa(s.Port))
	// If this process dies without Stop, SIGQUIT makes postgres shut down
	// immediately instead of living on as an orphan.
	cmd.SysProcAttr.Pdeathsig = syscall.SIGQUIT
	cmd.Stdout, cmd.Stderr = logFile, logFile
	p, err := StartProcess(cmd)
	logFile.Close()
	if err != nil {
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	if err := s.waitReady(ctx, p, offset); err != nil {
		_ = p.Stop(syscall.SIGQUIT, 5*time.Second)
		return err
	}
	s.proc = p
	s.logf("pgtest: postgres pid %d accepting connections on %s:%d after %s", p.cmd.Process.Pid, s.Host, s.Port, time.Since(start).Round(time.Millisecond))
	return nil
}

// waitReady polls until the server accepts a superuser login, the process
// exits, or ctx (capped at 60s) ends.
func (s *Server) waitReady(ctx context.Context, p *Process, logOffset int64) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	var lastErr error
	for {
		if p.Exited() {
			if logSays(s.LogFile, logOffset, "Address already in use") {
				return fmt.Errorf("pgtest: postgres port %d: %w", s.Port, errAddrInUse)
			}
			return fmt.Errorf("pgtest: postgres on port %d exited before accepting connections (%v)\n%s", s.Port, p.err, logTail(s.LogFile, logOffset))
		}
		if lastErr = s.probe(ctx); lastErr == nil {
			return nil
		}
		select {
		case <-p.done:
		case <-ctx.Done():
			return fmt.Errorf("pgtest: postgres on port %d not accepting connections: %w (last error: %v)\n%s", s.Port, ctx.Err(), lastErr, logTail(s.LogFile, logOffset))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// probe logs in as the superuser and checks that the server answering is
// ours: another cluster could have grabbed the port first.
func (s *Server) probe(ctx context.Context) error {
	conn, err := s.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	dataDir, err := queryValue(ctx, conn, "SHOW data_directory")
	if err != nil {
		return err
	}
	if dataDir != s.DataDir {
		return fmt.Errorf("port %d is served by another cluster (%s)", s.Port, dataDir)
	}
	return nil
}

// connect opens a superuser connection to the postgres database.
func (s *Server) connect(ctx context.Context) (*pgconn.PgConn, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return pgconn.Connect(ctx, s.DSN(SuperUser, SuperPassword, "postgres"))
}

// queryValue runs sql (simple protocol) and returns the first column of the
// first row of the last result.
func queryValue(ctx context.Context, conn *pgconn.PgConn, sql string) (string, error) {
	results, err := conn.Exec(ctx, sql).ReadAll()
	if err != nil {
		return "", err
	}
	if len(results) == 0 {
		return "", fmt.Errorf("%q returned no result", sql)
	}
	last := results[len(results)-1]
	if len(last.Rows) == 0 || len(last.Rows[0]) == 0 {
		return "", fmt.Errorf("%q returned no rows", sql)
	}
	return string(last.Rows[0][0]), nil
}
