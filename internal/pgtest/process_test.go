package pgtest

import (
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestProcessStop checks the exported Process: a child that exits cleanly
// on the signal stops with no error, one that ignores it is killed after
// the grace period and says so.
func TestProcessStop(t *testing.T) {
	t.Parallel()
	// The shell reports READY once its trap is set, so the signal cannot
	// arrive before it.
	start := func(trap string) *Process {
		cmd := exec.Command("sh", "-c", "trap '"+trap+"' TERM; echo READY; while :; do sleep 0.05; done")
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		p, err := StartProcess(cmd)
		if err != nil {
			t.Fatal(err)
		}
		var buf [6]byte
		if n, err := out.Read(buf[:]); err != nil || !strings.HasPrefix(string(buf[:n]), "READY") {
			t.Fatalf("child did not get ready: %q %v", buf[:n], err)
		}
		if p.Pid() <= 0 || p.Exited() {
			t.Fatalf("started child: pid %d, exited %v", p.Pid(), p.Exited())
		}
		return p
	}

	clean := start("exit 0")
	if err := clean.Stop(syscall.SIGTERM, 10*time.Second); err != nil {
		t.Errorf("Stop of a child exiting 0 on SIGTERM: %v", err)
	}
	if !clean.Exited() || clean.Err() != nil {
		t.Errorf("after Stop: exited %v, Err %v", clean.Exited(), clean.Err())
	}
	if err := clean.Stop(syscall.SIGTERM, time.Second); err != nil {
		t.Errorf("Stop after exit: %v", err)
	}

	stubborn := start("")
	err := stubborn.Stop(syscall.SIGTERM, 200*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("Stop of a child ignoring SIGTERM: %v, want it killed", err)
	}
	select {
	case <-stubborn.Done():
	default:
		t.Error("Done not closed after Stop")
	}
}
