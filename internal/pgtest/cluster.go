package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// Options configures StartCluster.
type Options struct {
	// Replica also starts a streaming hot-standby replica of the primary.
	Replica bool
	// Settings are extra postgresql.conf settings for both servers, as raw
	// unquoted values (e.g. "max_connections": "400"); they win over the
	// defaults.
	Settings map[string]string
	// ReplicaSettings are extra settings for the replica only
	// (e.g. "recovery_min_apply_delay": "500ms").
	ReplicaSettings map[string]string
	// Logf receives progress lines; nil discards them.
	Logf func(format string, args ...any)
}

// Cluster is a running primary and optional replica in one temp directory.
type Cluster struct {
	Dir     string
	Primary *Server
	Replica *Server // nil unless Options.Replica

	stopOnce sync.Once
	stopErr  error
}

// replicationSlot keeps the primary's WAL until the replica has it, so a
// slow or stopped replica can always catch up.
const replicationSlot = "pgtest_replica"

// baseSettings trade durability for speed; each line is reasoned below.
var baseSettings = [][2]string{
	{"listen_addresses", "127.0.0.1"},
	{"fsync", "off"},
	{"synchronous_commit", "off"},
	{"full_page_writes", "off"},
	// With synchronous_commit off, a commit reaches the replica only when
	// the WAL writer flushes it; 10ms instead of 200ms keeps lag small.
	{"wal_writer_delay", "10ms"},
	// A replica retries a lost primary every 100ms instead of every 5s, so
	// it catches up quickly after the primary restarts.
	{"wal_retrieve_retry_interval", "100ms"},
	{"wal_level", "replica"},
	{"max_wal_senders", "10"},
	{"hot_standby", "on"},
	{"max_connections", "400"},
	{"shared_buffers", "128MB"},
	{"password_encryption", "scram-sha-256"},
	{"log_destination", "stderr"},
	{"logging_collector", "off"},
	{"log_line_prefix", "%m [%p] %q%u@%d "},
}

const hbaConf = `# pgtest: local trust, TCP scram-sha-256 from 127.0.0.1 only
local all all trust
host all all 127.0.0.1/32 scram-sha-256
host replication all 127.0.0.1/32 scram-sha-256
`

// StartCluster creates a temp directory, initializes a primary, starts it
// and, with opts.Replica, a streaming replica. It returns once every server
// accepts connections. On failure it stops what it started and removes the
// directory; the error carries the relevant log tail.
func StartCluster(ctx context.Context, opts Options) (c *Cluster, err error) {
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	began := time.Now()
	bindir, err := BinDir()
	if err != nil {
		return nil, err
	}
	need := []string{"initdb", "postgres"}
	if opts.Replica {
		need = append(need, "pg_basebackup")
	}
	if err := requireBinaries(bindir, need...); err != nil {
		return nil, err
	}
	acct, err := postgresAccount()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(os.TempDir(), "pgone-pgtest-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	c = &Cluster{Dir: dir}
	defer func() {
		if err != nil {
			if stopErr := c.Stop(); stopErr != nil {
				logf("pgtest: cleanup after failed start: %v", stopErr)
			}
			c = nil
		}
	}()
	if err := acct.chown(dir); err != nil {
		return c, fmt.Errorf("pgtest: chown %s: %w", dir, err)
	}
	logf("pgtest: cluster dir %s, binaries %s", dir, bindir)

	newServer := func(name string) *Server {
		return &Server{
			Host:    "127.0.0.1",
			DataDir: filepath.Join(dir, name),
			LogFile: filepath.Join(dir, name+".log"),
			bindir:  bindir,
			acct:    acct,
			dir:     dir,
			logf:    logf,
		}
	}

	primary := newServer("primary")
	if err := initPrimary(ctx, primary, opts.Settings); err != nil {
		return c, err
	}
	logf("pgtest: initdb done after %s", time.Since(began).Round(time.Millisecond))
	c.Primary = primary
	if err := primary.startOnFreePort(ctx); err != nil {
		return c, err
	}
	if opts.Replica {
		replica := newServer("replica")
		if err := cloneReplica(ctx, primary, replica, opts.ReplicaSettings); err != nil {
			return c, err
		}
		c.Replica = replica
		if err := replica.startOnFreePort(ctx); err != nil {
			return c, err
		}
		if err := checkInRecovery(ctx, replica); err != nil {
			return c, err
		}
	}
	logf("pgtest: cluster ready in %s", time.Since(began).Round(time.Millisecond))
	return c, nil
}

// initPrimary runs initdb and writes postgresql.conf and pg_hba.conf.
func initPrimary(ctx context.Context, s *Server, settings map[string]string) error {
	pwfile := filepath.Join(s.dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(SuperPassword+"\n"), 0o600); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	defer os.Remove(pwfile)
	if err := s.acct.chown(pwfile); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	initdb := s.acct.command(ctx, s.dir, filepath.Join(s.bindir, "initdb"),
		"-D", s.DataDir, "-U", SuperUser, "--pwfile="+pwfile,
		"--auth-local=trust", "--auth-host=scram-sha-256",
		"-E", "UTF8", "--locale=C", "--no-sync")
	if err := runLogged(initdb, filepath.Join(s.dir, "initdb.log")); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	conf := append([][2]string{}, baseSettings...)
	// Unix sockets are a convenience for psql -h <dir>; skip them if the
	// path would pass the 107-byte sun_path limit.
	if len(s.dir)+len("/.s.PGSQL.65535.lock") < 100 {
		conf = append(conf, [2]string{"unix_socket_directories", s.dir})
	} else {
		conf = append(conf, [2]string{"unix_socket_directories", ""})
	}
	conf = append(conf, sortedSettings(settings)...)
	if err := appendConf(filepath.Join(s.DataDir, "postgresql.conf"), conf); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(s.DataDir, "pg_hba.conf"), []byte(hbaConf), 0o600); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	return s.acct.chown(filepath.Join(s.DataDir, "pg_hba.conf"))
}

// cloneReplica takes a base backup of primary into replica.DataDir, with
// standby.signal and primary_conninfo (-R) and a replication slot.
func cloneReplica(ctx context.Context, primary, replica *Server, settings map[string]string) error {
	cmd := replica.acct.command(ctx, replica.dir, filepath.Join(replica.bindir, "pg_basebackup"),
		"-h", primary.Host, "-p", fmt.Sprint(primary.Port), "-U", SuperUser,
		"-D", replica.DataDir, "-R", "-X", "stream", "-c", "fast", "--no-sync",
		"-C", "-S", replicationSlot, "-w")
	cmd.Env = append(cmd.Env, "PGPASSWORD="+SuperPassword)
	if err := runLogged(cmd, filepath.Join(replica.dir, "basebackup.log")); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	return appendConf(filepath.Join(replica.DataDir, "postgresql.conf"), sortedSettings(settings))
}

func checkInRecovery(ctx context.Context, s *Server) error {
	conn, err := s.connect(ctx)
	if err != nil {
		return fmt.Errorf("pgtest: replica: %w", err)
	}
	defer conn.Close(context.Background())
	v, err := queryValue(ctx, conn, "SELECT pg_is_in_recovery()")
	if err != nil {
		return fmt.Errorf("pgtest: replica: %w", err)
	}
	if v != "t" {
		return fmt.Errorf("pgtest: replica on port %d is not in recovery\n%s", s.Port, logTail(s.LogFile, 0))
	}
	return nil
}

func sortedSettings(m map[string]string) [][2]string {
	out := make([][2]string, 0, len(m))
	for k, v := range m {
		out = append(out, [2]string{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}

// appendConf appends name = 'value' lines to a configuration file; a later
// line for the same name wins. Every value is quoted, which PostgreSQL
// accepts for every type.
func appendConf(path string, settings [][2]string) error {
	if len(settings) == 0 {
		return nil
	}
	var b strings.Builder
	b.WriteString("\n# added by pgone internal/pgtest\n")
	for _, kv := range settings {
		fmt.Fprintf(&b, "%s = '%s'\n", kv[0], strings.ReplaceAll(kv[1], "'", "''"))
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	_, err = f.WriteString(b.String())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("pgtest: write %s: %w", path, err)
	}
	return nil
}

// Exec runs sql on the primary as the superuser, in database postgres,
// with the simple protocol: several statements separated by ';' are fine.
func (c *Cluster) Exec(ctx context.Context, sql string) error {
	conn, err := c.Primary.connect(ctx)
	if err != nil {
		return fmt.Errorf("pgtest: exec: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql).ReadAll(); err != nil {
		return fmt.Errorf("pgtest: exec: %w", err)
	}
	return nil
}

// WaitReplicaCaughtUp waits until the replica has replayed all WAL the
// primary had written when it was called, including asynchronous commits.
// Without a deadline on ctx it gives up after 60s.
func (c *Cluster) WaitReplicaCaughtUp(ctx context.Context) error {
	if c.Replica == nil {
		return errors.New("pgtest: cluster has no replica")
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, readyTimeout)
		defer cancel()
	}
	target, err := c.flushedPrimaryLSN(ctx)
	if err != nil {
		return err
	}
	conn, err := c.Replica.connect(ctx)
	if err != nil {
		return fmt.Errorf("pgtest: replica: %w", err)
	}
	defer conn.Close(context.Background())
	query := fmt.Sprintf("SELECT coalesce(pg_last_wal_replay_lsn() >= '%s'::pg_lsn, false), pg_last_wal_replay_lsn()", target)
	for {
		results, err := conn.Exec(ctx, query).ReadAll()
		if err != nil {
			return fmt.Errorf("pgtest: wait for replica to replay %s: %w", target, err)
		}
		row := results[0].Rows[0]
		if string(row[0]) == "t" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pgtest: replica replayed %s, primary is at %s: %w", row[1], target, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// flushedPrimaryLSN returns the primary's WAL write position after forcing
// every earlier asynchronous commit out: a synchronous commit flushes all
// WAL before it, and only flushed WAL is streamed.
func (c *Cluster) flushedPrimaryLSN(ctx context.Context) (string, error) {
	conn, err := c.Primary.connect(ctx)
	if err != nil {
		return "", fmt.Errorf("pgtest: primary: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "SET synchronous_commit = on; SELECT txid_current()").ReadAll(); err != nil {
		return "", fmt.Errorf("pgtest: primary: flush WAL: %w", err)
	}
	lsn, err := queryValue(ctx, conn, "SELECT pg_current_wal_lsn()")
	if err != nil {
		return "", fmt.Errorf("pgtest: primary: %w", err)
	}
	return lsn, nil
}

// Stop stops the replica, then the primary, and removes Dir. It is safe to
// call more than once and from several goroutines; later calls return the
// first call's result.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		var errs []error
		for _, s := range []*Server{c.Replica, c.Primary} {
			if s != nil {
				errs = append(errs, s.Stop())
			}
		}
		if c.Dir != "" {
			if err := os.RemoveAll(c.Dir); err != nil {
				errs = append(errs, fmt.Errorf("pgtest: remove %s: %w", c.Dir, err))
			}
		}
		c.stopErr = errors.Join(errs...)
	})
	return c.stopErr
}
