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

// startRelay runs bench/relaycore as target name, relay-<core>: a byte
// relay (goroutine, goroutine-raw, epoll, epoll-raw: the loop's system
// calls unseen by the runtime; epoll2 and epoll-raw2 run two loops) that
// pools and parses nothing, one upstream connection per client, so its
// CPU per transaction is the floor of that socket core; or txpool, the
// least a transaction pooler does, on one raw loop (issue 14: goroutine
// per client or an event loop).
func startRelay(ctx context.Context, env *Env, name string) (*Target, error) {
	core, loops := strings.TrimPrefix(name, "relay-"), "1"
	if core == "epoll2" || core == "epoll-raw2" {
		core, loops = strings.TrimSuffix(core, "2"), "2"
	}
	t := &Target{Name: name}
	mode := ""
	var args []string
	switch core {
	case "txpool":
		mode = "transaction"
		t.Setup = fmt.Sprintf("bench/relaycore -core txpool -pool %d: one raw epoll loop lending %d server connections per transaction (startup answered without authentication, frames scanned for ReadyForQuery and Terminate, nothing parsed, routed or counted: the least a transaction pooler does)", env.poolSize, env.poolSize)
		args = []string{"-core", core, "-pool", fmt.Sprint(env.poolSize),
			"-dsn", env.cluster.Primary.DSN(env.user, env.password, env.db)}
	default:
		t.Setup = fmt.Sprintf("bench/relaycore -core %s -loops %s: a byte relay, one server connection per client, no parsing, no pool (the socket core's floor)", core, loops)
		args = []string{"-core", core, "-loops", loops, "-upstream", fmt.Sprintf("127.0.0.1:%d", env.cluster.Primary.Port)}
	}
	t.db = func(PoolMode) (string, string) { return env.db, mode }
	dir := filepath.Join(env.dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	bin := filepath.Join(dir, "relaycore")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./bench/relaycore")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build relaycore: %v\n%s", err, out)
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
