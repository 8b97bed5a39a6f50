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
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func connectPGX(t *testing.T, s *Server) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN(SuperUser, SuperPassword, "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func queryString(t *testing.T, conn *pgx.Conn, sql string) string {
	t.Helper()
	var v string
	if err := conn.QueryRow(context.Background(), sql).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

// TestCluster exercises one primary+replica cluster end to end; the steps
// share it because starting one takes about two seconds.
func TestCluster(t *testing.T) {
	start := time.Now()
	c := New(t, Options{
		Replica:         true,
		Settings:        map[string]string{"max_connections": "150", "cluster_name": "it's pgtest"},
		ReplicaSettings: map[string]string{"recovery_min_apply_delay": "10ms"},
	})
	t.Logf("StartCluster with replica took %s", time.Since(start))
	ctx := context.Background()

	t.Run("Layout", func(t *testing.T) {
		if c.Primary.Host != "127.0.0.1" || c.Replica.Host != "127.0.0.1" {
			t.Errorf("hosts %q %q, want 127.0.0.1", c.Primary.Host, c.Replica.Host)
		}
		if c.Primary.Port == c.Replica.Port {
			t.Errorf("primary and replica share port %d", c.Primary.Port)
		}
		for _, path := range []string{c.Primary.DataDir, c.Replica.DataDir, c.Primary.LogFile, c.Replica.LogFile} {
			if !strings.HasPrefix(path, c.Dir+string(filepath.Separator)) {
				t.Errorf("%s is outside %s", path, c.Dir)
			}
		}
		want := fmt.Sprintf("host=127.0.0.1 port=%d user=u password=p dbname=d sslmode=disable", c.Primary.Port)
		if got := c.Primary.DSN("u", "p", "d"); got != want {
			t.Errorf("DSN = %q, want %q", got, want)
		}
	})

	t.Run("RecoveryState", func(t *testing.T) {
		if got := queryString(t, connectPGX(t, c.Primary), "SELECT pg_is_in_recovery()::text"); got != "false" {
			t.Errorf("primary pg_is_in_recovery = %s", got)
		}
		if got := queryString(t, connectPGX(t, c.Replica), "SELECT pg_is_in_recovery()::text"); got != "true" {
			t.Errorf("replica pg_is_in_recovery = %s", got)
		}
	})

	t.Run("Settings", func(t *testing.T) {
		primary, replica := connectPGX(t, c.Primary), connectPGX(t, c.Replica)
		for _, conn := range []*pgx.Conn{primary, replica} {
			if got := queryString(t, conn, "SHOW max_connections"); got != "150" {
				t.Errorf("max_connections = %s, want 150", got)
			}
			if got := queryString(t, conn, "SHOW cluster_name"); got != "it's pgtest" {
				t.Errorf("cluster_name = %q, want a quote to survive", got)
			}
			if got := queryString(t, conn, "SHOW fsync"); got != "off" {
				t.Errorf("fsync = %s, want off", got)
			}
		}
		if got := queryString(t, replica, "SHOW recovery_min_apply_delay"); got != "10ms" {
			t.Errorf("replica recovery_min_apply_delay = %s, want 10ms", got)
		}
		if got := queryString(t, primary, "SHOW recovery_min_apply_delay"); got != "0" {
			t.Errorf("primary recovery_min_apply_delay = %s, want 0", got)
		}
	})

	t.Run("ReplicaReadsPrimaryWrites", func(t *testing.T) {
		if err := c.Exec(ctx, "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'one'), (2, 'two')"); err != nil {
			t.Fatal(err)
		}
		waitStart := time.Now()
		if err := c.WaitReplicaCaughtUp(ctx); err != nil {
			t.Fatal(err)
		}
		t.Logf("replica caught up in %s", time.Since(waitStart))
		if got := queryString(t, connectPGX(t, c.Replica), "SELECT string_agg(v, ',' ORDER BY id) FROM t"); got != "one,two" {
			t.Errorf("replica reads %q, want one,two", got)
		}
		// A write on the replica must fail: it is read-only.
		if _, err := connectPGX(t, c.Replica).Exec(ctx, "INSERT INTO t VALUES (3, 'three')"); err == nil {
			t.Error("insert on the replica succeeded")
		}
	})

	t.Run("ExecErrors", func(t *testing.T) {
		err := c.Exec(ctx, "SELECT 1; SELECT * FROM no_such_table")
		if err == nil || !strings.Contains(err.Error(), "no_such_table") {
			t.Errorf("Exec of a bad statement: %v", err)
		}
	})

	t.Run("PrimaryRestartKeepsData", func(t *testing.T) {
		pid, port := c.Primary.Pid(), c.Primary.Port
		if err := c.Primary.Stop(); err != nil {
			t.Fatal(err)
		}
		if c.Primary.Pid() != 0 {
			t.Error("Pid after Stop is not 0")
		}
		if err := syscall.Kill(pid, 0); err == nil {
			t.Errorf("postmaster pid %d still exists after Stop", pid)
		}
		if err := c.Primary.Stop(); err != nil {
			t.Errorf("second Stop: %v", err)
		}
		if err := c.Primary.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if c.Primary.Port != port {
			t.Errorf("port moved from %d to %d", port, c.Primary.Port)
		}
		if got := queryString(t, connectPGX(t, c.Primary), "SELECT count(*)::text FROM t"); got != "2" {
			t.Errorf("after restart the primary has %s rows, want 2", got)
		}
		// The replica reconnects to the restarted primary and keeps streaming.
		if err := c.Exec(ctx, "INSERT INTO t VALUES (3, 'three')"); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitReplicaCaughtUp(ctx); err != nil {
			t.Fatal(err)
		}
		if got := queryString(t, connectPGX(t, c.Replica), "SELECT count(*)::text FROM t"); got != "3" {
			t.Errorf("replica has %s rows after the primary restarted, want 3", got)
			t.Logf("primary: rows, LSN: %s", queryString(t, connectPGX(t, c.Primary), "SELECT count(*)::text || ' ' || pg_current_wal_lsn()::text FROM t"))
			t.Logf("replica: rows, replay LSN: %s", queryString(t, connectPGX(t, c.Replica), "SELECT count(*)::text || ' ' || pg_last_wal_replay_lsn()::text FROM t"))
			t.Logf("%s\n%s", logTail(c.Primary.LogFile, 0), logTail(c.Replica.LogFile, 0))
		}
	})

	t.Run("PauseResumeKill", func(t *testing.T) {
		pid := c.Primary.Pid()
		procs := append(c.Primary.ChildPids(), pid)
		if len(procs) < 3 {
			t.Fatalf("primary pid %d has children %v; want its background processes", pid, procs[:len(procs)-1])
		}
		if err := c.Primary.Pause(); err != nil {
			t.Fatal(err)
		}
		for _, p := range procs {
			deadline := time.Now().Add(5 * time.Second)
			// Signal delivery is asynchronous; a child that exited stays a
			// zombie, since its stopped parent cannot reap it.
			for alive(p) && procState(p) != "T" && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			if st := procState(p); alive(p) && st != "T" {
				t.Errorf("pid %d in state %q after Pause, want T (stopped)", p, st)
			}
		}
		short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		if conn, err := c.Primary.connect(short); err == nil {
			conn.Close(ctx)
			t.Error("a paused server accepted a login")
		}
		cancel()
		if err := c.Primary.Resume(); err != nil {
			t.Fatal(err)
		}
		queryString(t, connectPGX(t, c.Primary), "SELECT 'after resume'")
		if err := c.Primary.Kill(); err != nil {
			t.Fatal(err)
		}
		for _, p := range procs {
			if alive(p) {
				t.Errorf("pid %d still runs after Kill", p)
			}
		}
		if c.Primary.Pid() != 0 {
			t.Error("Pid is not 0 after Kill")
		}
		if err := c.Primary.Start(ctx); err != nil {
			t.Fatalf("start after kill -9 (crash recovery): %v", err)
		}
		queryString(t, connectPGX(t, c.Primary), "SELECT 'after crash recovery'")
	})

	t.Run("StopReleasesEverything", func(t *testing.T) {
		ports := []int{c.Primary.Port, c.Replica.Port}
		pids := []int{c.Primary.Pid(), c.Replica.Pid()}
		var wg sync.WaitGroup
		errs := make([]error, 3)
		for i := range errs {
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = c.Stop() }()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		for _, port := range ports {
			if conn, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second); err == nil {
				conn.Close()
				t.Errorf("port %d still accepts connections", port)
			}
		}
		for _, pid := range pids {
			if err := syscall.Kill(pid, 0); err == nil {
				t.Errorf("pid %d still exists", pid)
			}
		}
		if _, err := os.Stat(c.Dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still exists (%v)", c.Dir, err)
		}
		if err := c.Stop(); err != nil {
			t.Errorf("Stop after Stop: %v", err)
		}
	})
}

// TestStartClusterFailureCleansUp checks that a server that cannot start
// yields its log in the error and leaves no directory behind.
func TestStartClusterFailureCleansUp(t *testing.T) {
	var dir string
	logf := func(format string, args ...any) {
		if line := fmt.Sprintf(format, args...); strings.HasPrefix(line, "pgtest: cluster dir ") {
			dir = strings.Fields(strings.TrimPrefix(line, "pgtest: cluster dir "))[0]
			dir = strings.TrimSuffix(dir, ",")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := StartCluster(ctx, Options{Settings: map[string]string{"shared_buffers": "lots"}, Logf: logf})
	if err == nil {
		c.Stop()
		t.Fatal("StartCluster with a bad setting succeeded")
	}
	if !strings.Contains(err.Error(), "shared_buffers") {
		t.Errorf("error lacks the log tail naming the bad setting:\n%v", err)
	}
	if dir == "" {
		t.Fatal("no cluster dir was logged")
	}
	if _, statErr := os.Stat(dir); !errors.Is(statErr, os.ErrNotExist) {
		t.Errorf("%s left behind after a failed start (%v)", dir, statErr)
	}
}

func TestBinDir(t *testing.T) {
	dir, err := BinDir()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"initdb", "postgres", "pg_basebackup"} {
		if !isExecutable(filepath.Join(dir, name)) {
			t.Errorf("%s missing in %s", name, dir)
		}
	}

	t.Setenv(BinDirEnv, dir)
	if got, err := BinDir(); err != nil || got != dir {
		t.Errorf("with %s=%s: BinDir() = %q, %v", BinDirEnv, dir, got, err)
	}

	t.Setenv(BinDirEnv, t.TempDir())
	_, err = BinDir()
	if !errors.Is(err, ErrNotInstalled) || !strings.Contains(err.Error(), "apt-get install -y postgresql") {
		t.Errorf("with an empty %s: %v, want ErrNotInstalled with the install hint", BinDirEnv, err)
	}
}

// helperEnv makes the test binary act as a program that starts a cluster,
// prints its pids and blocks, so a test can kill it with SIGKILL.
const helperEnv = "PGTEST_ORPHAN_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		orphanHelper()
	}
	os.Exit(m.Run())
}

func orphanHelper() {
	c, err := StartCluster(context.Background(), Options{})
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	fmt.Printf("READY %d %s\n", c.Primary.Pid(), c.Dir)
	r, err := StartRedis(context.Background())
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	fmt.Printf("REDIS %d %s\n", r.proc.cmd.Process.Pid, r.dir)
	select {}
}

// TestServersDieWithParent checks that servers do not outlive a test binary
// that is killed without cleanup (a go test timeout, kill -9).
func TestServersDieWithParent(t *testing.T) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The helper prints READY and REDIS lines, or ERROR; a read on the pipe
	// ends at the latest when the helper exits.
	var pgPid, redisPid int
	var dir, redisDir string
	var out strings.Builder
	timer := time.AfterFunc(time.Minute, func() { cmd.Process.Kill() })
	scanner := bufio.NewScanner(stdout)
	for redisPid == 0 && scanner.Scan() {
		line := scanner.Text()
		out.WriteString(line + "\n")
		switch {
		case strings.HasPrefix(line, "READY "):
			fmt.Sscanf(line, "READY %d %s", &pgPid, &dir)
		case strings.HasPrefix(line, "REDIS "):
			fmt.Sscanf(line, "REDIS %d %s", &redisPid, &redisDir)
		case strings.HasPrefix(line, "ERROR"):
			cmd.Process.Kill()
		}
	}
	timer.Stop()
	if pgPid == 0 || redisPid == 0 {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper did not start servers:\n%s", out.String())
	}
	// Nobody else removes these: the helper dies without cleanup.
	defer os.RemoveAll(dir)
	defer os.RemoveAll(redisDir)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	for _, pid := range []int{pgPid, redisPid} {
		gone := false
		for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			if syscall.Kill(pid, 0) != nil {
				gone = true
				break
			}
		}
		if !gone {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Errorf("pid %d outlived its killed parent", pid)
		}
	}
}
