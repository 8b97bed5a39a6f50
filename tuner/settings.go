package tuner

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// Loop 4: PostgreSQL settings advice. Every settingsEvery intervals the
// settings source (cmd/pgone: one connection per primary) reads each
// server's settings and counters; adviseSettings turns one reading into
// advice:
//
//   - work_mem, for statements that spill to disk (pg_stat_statements'
//     temp_blks_written, where installed): raised to cover the largest
//     spill per call, at most 4× the current value at once and at most
//     1 GB. Reloadable: applied (ALTER SYSTEM, pg_reload_conf()) only
//     with apply_pg_settings: true.
//   - max_connections, from pgone's own cap (max_server_connections) plus
//     the peak of the server's other connections, with reserve and 10%
//     headroom: raise it when below. Needs a restart: advice only.
//   - shared_buffers, when the buffer hit ratio over the last readings
//     stays under 99%. Needs a restart: advice only.
//
// Each piece of advice is logged and counted once (until it changes).

// PGSnapshot is one reading of one PostgreSQL server.
type PGSnapshot struct {
	Server         string // the database entry it was read through
	WorkMem        int64  // bytes
	MaxConnections int
	SharedBuffers  int64 // bytes
	Connections    int   // client backends now, pgone's included
	PgoneServers   int   // of them, pgone's own (all pools)
	BlocksHit      int64 // cumulative, all databases
	BlocksRead     int64
	Statements     bool    // pg_stat_statements could be read
	Spills         []Spill // statements that wrote temp blocks, most first
}

// Spill is one statement that spilled to disk.
type Spill struct {
	Query             string
	Calls             int64
	TempBlocksWritten int64
}

// SettingsSource reads servers and applies settings; cmd/pgone implements
// it.
type SettingsSource interface {
	Snapshot(ctx context.Context) ([]PGSnapshot, error)
	// Apply sets a reloadable setting with ALTER SYSTEM and reloads.
	Apply(ctx context.Context, server, name, value string) error
}

// Advice is one recommended setting.
type Advice struct {
	Server, Setting      string
	Current, Recommended string
	Reason               string
	Reloadable           bool // may be applied without a restart
}

const (
	settingsEvery   = 12 // intervals between readings
	blockSize       = 8192
	maxAdvWorkMem   = 1 << 30
	minHitRatio     = 0.99
	minBlocksToJudg = 10000
	reservedConns   = 3 // superuser_reserved_connections' default
)

// adviseSettings is the pure advice for one reading; prev is the
// server's previous reading (nil for the first), otherPeak the peak of
// the server's non-pgone connections seen so far.
func adviseSettings(s PGSnapshot, prev *PGSnapshot, maxServer, otherPeak int) []Advice {
	var out []Advice
	if a, ok := adviseWorkMem(s); ok {
		out = append(out, a)
	}
	need := maxServer + otherPeak + reservedConns
	need += need / 10
	if s.MaxConnections > 0 && s.MaxConnections < need {
		out = append(out, Advice{Server: s.Server, Setting: "max_connections", Current: fmt.Sprint(s.MaxConnections),
			Recommended: fmt.Sprint(need),
			Reason: fmt.Sprintf("pgone may open %d connections and others peaked at %d (+%d reserved, +10%%): needs a restart",
				maxServer, otherPeak, reservedConns)})
	}
	if prev != nil {
		hit, read := s.BlocksHit-prev.BlocksHit, s.BlocksRead-prev.BlocksRead
		if hit >= 0 && read >= 0 && hit+read >= minBlocksToJudg {
			if ratio := float64(hit) / float64(hit+read); ratio < minHitRatio {
				out = append(out, Advice{Server: s.Server, Setting: "shared_buffers", Current: bytesText(s.SharedBuffers),
					Recommended: bytesText(s.SharedBuffers * 2),
					Reason:      fmt.Sprintf("buffer hit ratio %.3f under %.2f (%d reads): needs a restart", ratio, minHitRatio, read)})
			}
		}
	}
	return out
}

func adviseWorkMem(s PGSnapshot) (Advice, bool) {
	var worst Spill
	var perCall int64
	for _, sp := range s.Spills {
		if sp.Calls <= 0 {
			continue
		}
		if pc := sp.TempBlocksWritten * blockSize / sp.Calls; pc > perCall {
			perCall, worst = pc, sp
		}
	}
	if perCall == 0 || s.WorkMem <= 0 {
		return Advice{}, false
	}
	rec := roundUpMB(s.WorkMem + perCall)
	rec = min(rec, s.WorkMem*4, maxAdvWorkMem)
	if rec <= s.WorkMem {
		return Advice{}, false
	}
	q := worst.Query
	if len(q) > 80 {
		q = q[:80] + "…"
	}
	return Advice{Server: s.Server, Setting: "work_mem", Current: bytesText(s.WorkMem), Recommended: bytesText(rec),
		Reason:     fmt.Sprintf("%q spills %s per call to disk (%d calls)", q, bytesText(perCall), worst.Calls),
		Reloadable: true}, true
}

func roundUpMB(b int64) int64 { return (b + (1<<20 - 1)) &^ (1<<20 - 1) }

// bytesText is b as PostgreSQL writes memory settings.
func bytesText(b int64) string {
	switch {
	case b%(1<<30) == 0 && b > 0:
		return fmt.Sprintf("%dGB", b>>30)
	case b%(1<<20) == 0 && b > 0:
		return fmt.Sprintf("%dMB", b>>20)
	}
	return fmt.Sprintf("%dkB", b>>10)
}

// settingsState is loop 4's memory.
type settingsState struct {
	prev      map[string]PGSnapshot
	otherPeak map[string]int
	advice    map[string]Advice // by server/setting: the last given
	ticks     int
}

func newSettingsState() *settingsState {
	return &settingsState{prev: map[string]PGSnapshot{}, otherPeak: map[string]int{}, advice: map[string]Advice{}}
}

// SetSettingsSource gives loop 4 its servers; call it before Run.
func (t *Tuner) SetSettingsSource(src SettingsSource) { t.settingsSrc = src }

// settingsDue reports whether Run should read the servers this interval.
func (t *Tuner) settingsDue() bool {
	if t.cfg.PGSettings == ModeOff || t.settingsSrc == nil {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.settings.ticks++
	return t.settings.ticks%settingsEvery == 1
}

// StepSettings reads the servers (outside the tuner's lock), turns the
// readings into advice, and applies the reloadable advice when
// apply_pg_settings is true and the loop is on. Run calls it every
// settingsEvery intervals.
func (t *Tuner) StepSettings(ctx context.Context, now time.Time) []Decision {
	if t.settingsSrc == nil || t.cfg.PGSettings == ModeOff {
		return nil
	}
	snaps, err := t.settingsSrc.Snapshot(ctx)
	if err != nil && t.log != nil {
		t.log.Warn("tuner: reading PostgreSQL settings", "err", err)
	}
	decisions := t.adviseAll(now, snaps)
	for i := range decisions {
		d := &decisions[i]
		if d.Action != "apply" {
			continue
		}
		if err := t.settingsSrc.Apply(ctx, d.server, d.setting, d.value); err != nil && t.log != nil {
			t.log.Warn("tuner: applying a setting failed", "server", d.server, "setting", d.setting, "value", d.value, "err", err)
		}
	}
	out := make([]Decision, len(decisions))
	for i, d := range decisions {
		out[i] = d.Decision
	}
	return out
}

type settingsDecision struct {
	Decision
	server, setting, value string
}

// adviseAll is the pure part of stepSettings: new advice becomes a
// decision (advise, or apply when allowed), logged and counted once.
func (t *Tuner) adviseAll(now time.Time, snaps []PGSnapshot) []settingsDecision {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.settings
	var out []settingsDecision
	for _, s := range snaps {
		st.otherPeak[s.Server] = max(st.otherPeak[s.Server], s.Connections-s.PgoneServers)
		var prev *PGSnapshot
		if p, ok := st.prev[s.Server]; ok {
			prev = &p
		}
		st.prev[s.Server] = s
		for _, a := range adviseSettings(s, prev, t.bounds.MaxServerConnections, st.otherPeak[s.Server]) {
			key := a.Server + "/" + a.Setting
			if old, ok := st.advice[key]; ok && old.Recommended == a.Recommended && old.Current == a.Current {
				continue // given already
			}
			st.advice[key] = a
			d := Decision{At: now, Loop: "settings", Target: key, Action: "advise", Mode: t.cfg.PGSettings,
				Reason: a.Reason, Inputs: "current=" + a.Current + " recommended=" + a.Recommended}
			if a.Reloadable && t.cfg.ApplyPGSettings && t.cfg.PGSettings == ModeOn {
				d.Action = "apply"
			}
			t.decided(d)
			out = append(out, settingsDecision{Decision: d, server: a.Server, setting: a.Setting, value: a.Recommended})
		}
	}
	return out
}

// settingsRows are SHOW TUNER's rows of loop 4: the advice in force.
func (t *Tuner) settingsRowsLocked() [][]string {
	keys := make([]string, 0, len(t.settings.advice))
	for k := range t.settings.advice {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var rows [][]string
	for _, k := range keys {
		a := t.settings.advice[k]
		state := "current=" + a.Current + " recommended=" + a.Recommended
		if !a.Reloadable {
			state += " (restart)"
		}
		rows = append(rows, []string{"settings", string(t.cfg.PGSettings), k, state, "", "", a.Reason, ""})
	}
	return rows
}
