package proc

import (
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	// A command name with a space and a ')' in it: fields count from the last ')'.
	line := "4242 (we) ird name) S 17 4242 4242 0 -1 4194560 1 0 0 0 3 4 5 6 20 0 1 0 100 0 0"
	st, ok := parseStat([]byte(line))
	if !ok {
		t.Fatal("parseStat failed")
	}
	if want := (Stat{Ppid: 17, Pgid: 4242, CPUTicks: 3 + 4 + 5 + 6}); st != want {
		t.Errorf("got %+v, want %+v", st, want)
	}
	if _, ok := parseStat([]byte("4242 (short) S 1 2")); ok {
		t.Error("a truncated line parsed")
	}
}

func TestDescendants(t *testing.T) {
	parent := map[int]int{10: 1, 11: 10, 12: 11, 20: 1, 21: 20, 30: 10}
	got := descendants(10, parent, []int{12, 40})
	slices.Sort(got)
	if want := []int{10, 11, 12, 30, 40}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// TestStopKillsGroup: a child that ignores the stop signal is killed after
// the grace, and so is a fork of it, which shares its process group.
func TestStopKillsGroup(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command("sh", "-c", `trap "" TERM; echo ready; sleep 60 & wait`)
	c, err := Start("stubborn", cmd, filepath.Join(dir, "log"), syscall.SIGKILL)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(TreePids(c.Pid(), false)) < 2 || !strings.Contains(c.LogTail(), "ready") {
		if time.Now().After(deadline) {
			t.Fatalf("fork never appeared; log %s", c.LogTail())
		}
		time.Sleep(10 * time.Millisecond)
	}
	err = c.Stop(syscall.SIGTERM, 200*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("Stop = %v, want the kill reported", err)
	}
	if !c.Exited() || c.Err() == nil {
		t.Errorf("exited %v, err %v: want exited with an error", c.Exited(), c.Err())
	}
	for deadline := time.Now().Add(5 * time.Second); len(TreePids(c.Pid(), true)) > 0; {
		if time.Now().After(deadline) {
			t.Fatalf("process group %d still has %v", c.Pid(), TreePids(c.Pid(), true))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := c.Signal(syscall.SIGHUP); err == nil {
		t.Error("Signal to an exited child succeeded")
	}
}

func TestStopClean(t *testing.T) {
	c, err := Start("sleep", exec.Command("sleep", "60"), filepath.Join(t.TempDir(), "log"), syscall.SIGKILL)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(syscall.SIGTERM, 10*time.Second); err != nil {
		t.Errorf("Stop = %v", err)
	}
	if !c.Exited() {
		t.Error("not exited after Stop")
	}
}
