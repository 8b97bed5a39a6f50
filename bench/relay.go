package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pgone/pgone/bench/proc"
)

// startRelay runs bench/relaycore with the given core (goroutine,
// goroutine-raw, epoll, epoll-raw: the loop's system calls unseen by the
// runtime; a trailing 2, as in epoll2, runs two loops) as a target: a byte relay
// that pools nothing and parses nothing, one upstream connection per
// client, so its CPU per transaction is the floor of that socket core
// (issue 14: goroutine per client or an event loop).
func startRelay(ctx context.Context, env *Env, core string) (*Target, error) {
	loops := "1"
	if strings.HasPrefix(core, "epoll") && strings.HasSuffix(core, "2") {
		core, loops = strings.TrimSuffix(core, "2"), "2"
	}
	dir := filepath.Join(env.dir, "relay-"+core+loops)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	bin := filepath.Join(dir, "relaycore")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./bench/relaycore")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build relaycore: %v\n%s", err, out)
	}
	name := "relay-" + core
	if loops != "1" {
		name += loops
	}
	t := &Target{
		Name:  name,
		Setup: fmt.Sprintf("bench/relaycore -core %s -loops %s: a byte relay, one server connection per client, no parsing, no pool (the socket core's floor)", core, loops),
		db:    func(PoolMode) (string, string) { return env.db, "" },
	}
	args := []string{"-core", core, "-loops", loops, "-upstream", fmt.Sprintf("127.0.0.1:%d", env.cluster.Primary.Port)}
	if core == "txpool" {
		t.Setup = fmt.Sprintf("bench/relaycore -core txpool -pool %d: one raw epoll loop lending %d server connections per transaction (startup answered without authentication, frames scanned for ReadyForQuery and Terminate, nothing parsed, routed or counted: the least a transaction pooler does)", env.poolSize, env.poolSize)
		t.db = func(PoolMode) (string, string) { return env.db, "transaction" }
		args = []string{"-core", core, "-pool", fmt.Sprint(env.poolSize),
			"-dsn", env.cluster.Primary.DSN(env.user, env.password, env.db)}
	}
	err := startOnFreePort(ctx, env, t, func(port int) (*proc.Child, error) {
		cmd := env.acct.command(dir, bin, append(args, "-listen", fmt.Sprintf("127.0.0.1:%d", port))...)
		cmd.SysProcAttr.Credential = nil
		return proc.Start(name, cmd, filepath.Join(dir, "relay.log"), syscall.SIGTERM)
	}, env.db)
	if err != nil {
		return nil, err
	}
	t.stop = func() error { return t.proc.Stop(syscall.SIGTERM, 5*time.Second) }
	return t, nil
}
