package proc

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Stat is the part of /proc/PID/stat the bench and the soak read.
type Stat struct {
	Ppid, Pgid int
	CPUTicks   int64 // utime+stime+cutime+cstime, in USER_HZ ticks
}

// ReadStat reads /proc/PID/stat; false if the process is gone.
func ReadStat(pid int) (Stat, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Stat{}, false
	}
	return parseStat(b)
}

// parseStat parses one /proc/PID/stat line. The command name is in
// parentheses and may hold spaces and parentheses, so fields are counted
// after the last ')'.
func parseStat(b []byte) (Stat, bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return Stat{}, false
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime is field 14.
	if len(f) < 15 {
		return Stat{}, false
	}
	var st Stat
	st.Ppid, _ = strconv.Atoi(f[1])
	st.Pgid, _ = strconv.Atoi(f[2])
	for _, k := range []int{11, 12, 13, 14} {
		v, _ := strconv.ParseInt(f[k], 10, 64)
		st.CPUTicks += v
	}
	return st, true
}

// TreePids returns root and its live descendants; withGroup adds members
// of root's process group (children a daemon re-parented).
func TreePids(root int, withGroup bool) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	parent := map[int]int{}
	var inGroup []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, ok := ReadStat(pid)
		if !ok {
			continue
		}
		parent[pid] = st.Ppid
		if withGroup && st.Pgid == root && pid != root {
			inGroup = append(inGroup, pid)
		}
	}
	return descendants(root, parent, inGroup)
}

// descendants returns root and every pid whose chain of parents reaches
// root, then the members of extra not already listed.
func descendants(root int, parent map[int]int, extra []int) []int {
	var out []int
	seen := map[int]bool{}
	for pid := range parent {
		for p, depth := pid, 0; p > 1 && depth < 64; p, depth = parent[p], depth+1 {
			if p == root {
				out = append(out, pid)
				seen[pid] = true
				break
			}
		}
	}
	for _, pid := range extra {
		if !seen[pid] {
			out = append(out, pid)
		}
	}
	return out
}
