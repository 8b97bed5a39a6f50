package tuner

import (
	"testing"
	"time"
)

// TestAdviseSettings: a spilling statement raises work_mem to cover its
// spill per call (bounded to 4× at once); max_connections below pgone's
// cap plus the others' peak is advised up (restart); a low buffer hit
// ratio between two readings advises shared_buffers (restart).
func TestAdviseSettings(t *testing.T) {
	s := PGSnapshot{Server: "app", WorkMem: 4 << 20, MaxConnections: 100, SharedBuffers: 128 << 20,
		Spills: []Spill{{Query: "SELECT ... ORDER BY", Calls: 10, TempBlocksWritten: 10 * 768}}} // 6 MiB per call
	prev := s
	s.BlocksHit, s.BlocksRead = 90000, 10000
	got := map[string]Advice{}
	for _, a := range adviseSettings(s, &prev, 300, 20) {
		got[a.Setting] = a
	}
	if a := got["work_mem"]; a.Recommended != "10MB" || !a.Reloadable {
		t.Errorf("work_mem advice %+v; want 10MB (4MB + the 6MB spill per call), reloadable", a)
	}
	if a := got["max_connections"]; a.Recommended != "355" || a.Reloadable {
		t.Errorf("max_connections advice %+v; want 355 ((300+20+3)×1.1), not reloadable", a)
	}
	if a := got["shared_buffers"]; a.Recommended != "256MB" || a.Reloadable {
		t.Errorf("shared_buffers advice %+v; want 256MB, not reloadable", a)
	}
	s.Spills[0].TempBlocksWritten = 10 * 1 << 20 // 8 GiB per call: bounded
	if a, _ := adviseWorkMem(s); a.Recommended != "16MB" {
		t.Errorf("work_mem advice for a huge spill: %+v; want 16MB (4× at most)", a)
	}
	quiet := PGSnapshot{Server: "app", WorkMem: 4 << 20, MaxConnections: 500}
	if as := adviseSettings(quiet, &quiet, 300, 20); len(as) != 0 {
		t.Errorf("advice %+v for a server with nothing to fix", as)
	}
}

// TestSettingsAdviceOnceAndApply: the same advice is logged once; it is
// an apply only in mode on with apply_pg_settings, and only for a
// reloadable setting.
func TestSettingsAdviceOnceAndApply(t *testing.T) {
	snap := PGSnapshot{Server: "app", WorkMem: 4 << 20, MaxConnections: 10,
		Spills: []Spill{{Query: "q", Calls: 1, TempBlocksWritten: 256}}}
	for _, tc := range []struct {
		mode  Mode
		apply bool
		want  string
	}{{ModeDryRun, true, "advise"}, {ModeOn, false, "advise"}, {ModeOn, true, "apply"}} {
		cfg := Config{PGSettings: tc.mode, ApplyPGSettings: tc.apply}
		cfg.Defaults()
		tu := New(cfg, PoolBounds{MaxServerConnections: 300}, nil, nil, nil)
		ds := tu.adviseAll(time.Unix(0, 0), []PGSnapshot{snap})
		actions := map[string]string{}
		for _, d := range ds {
			actions[d.setting] = d.Action
		}
		if actions["work_mem"] != tc.want || actions["max_connections"] != "advise" {
			t.Errorf("mode %s apply %v: %v; want work_mem %s, max_connections advise", tc.mode, tc.apply, actions, tc.want)
		}
		if again := tu.adviseAll(time.Unix(60, 0), []PGSnapshot{snap}); len(again) != 0 {
			t.Errorf("the same advice decided again: %v", again)
		}
	}
}
