package tuner

import (
	"context"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"
)

// Knobs are what the tuner reads and turns; cmd/pgone implements them on
// the pools and the cache.
type Knobs interface {
	// Pools reports every pool now.
	Pools() []PoolState
	// SetPoolSize changes one pool's size; false if the pool is gone.
	SetPoolSize(name string, n int) bool
}

// Normalizer turns a statement text into its normalised form (constants
// replaced by $n); false when it cannot (over the parser's bounds).
type Normalizer func(text string) (string, bool)

// maxDecisions is how many recent decisions SHOW TUNER keeps.
const maxDecisions = 32

// Tuner owns the statistics and the loops. Make it with New.
type Tuner struct {
	cfg       Config
	bounds    PoolBounds
	knobs     Knobs
	normalize Normalizer
	log       *slog.Logger
	queries   *queryTable
	metrics   *metrics // nil until RegisterMetrics
	writes    *tableWrites

	mu        sync.Mutex // the loops' state below; Step holds it
	pools     map[string]*poolLoop
	decisions []Decision // the last maxDecisions, oldest first
	admission *admission
	settings  *settingsState
	replicas  *replicaLoop
	// settingsSrc reads and sets PostgreSQL settings (loop 4); nil: none.
	settingsSrc SettingsSource
}

// New builds a tuner. knobs may be nil (statistics only); normalize may
// be nil (texts are shown as first seen, cut to 1 KiB).
func New(cfg Config, bounds PoolBounds, knobs Knobs, normalize Normalizer, log *slog.Logger) *Tuner {
	return &Tuner{cfg: cfg, bounds: bounds, knobs: knobs, normalize: normalize, log: log,
		queries: newQueryTable(2 * cfg.TopQueries), pools: map[string]*poolLoop{},
		writes: newTableWrites(), admission: newAdmission(), settings: newSettingsState(), replicas: newReplicaLoop()}
}

// Config returns the configuration the tuner runs with.
func (t *Tuner) Config() Config { return t.cfg }

// Record adds one request's sample. Safe for concurrent use.
func (t *Tuner) Record(s Sample) {
	t.queries.record(&s)
}

// RecordWrite counts a committed write of tables (the cache admission's
// write rate). Safe for concurrent use.
func (t *Tuner) RecordWrite(database string, tables []string) {
	t.writes.add(tables)
}

// Run calls Step every interval until ctx ends.
func (t *Tuner) Run(ctx context.Context) {
	tick := time.NewTicker(t.cfg.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			t.Step(now)
			if t.settingsDue() {
				t.StepSettings(ctx, now)
			}
		}
	}
}

// Step runs every loop that is not off once, at now, and applies (mode
// on), logs and counts what they decide.
func (t *Tuner) Step(now time.Time) []Decision {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Decision
	if t.cfg.PoolSize != ModeOff && t.knobs != nil {
		out = append(out, t.stepPools(now)...)
	}
	if t.cfg.CacheAdmission != ModeOff {
		out = append(out, t.stepAdmission(now)...)
	}
	if rk, ok := t.knobs.(ReplicaKnobs); ok && t.cfg.ReplicaWeights != ModeOff {
		out = append(out, t.stepReplicas(now, rk)...)
	}
	return out
}

// stepPools runs loop 1 over every pool, the pools in name order so the
// global cap is shared the same way each time.
func (t *Tuner) stepPools(now time.Time) []Decision {
	states := t.knobs.Pools()
	sort.Slice(states, func(i, j int) bool { return states[i].Name < states[j].Name })
	total := 0
	for _, st := range states {
		total += st.Size
	}
	var out []Decision
	seen := map[string]bool{}
	for _, st := range states {
		seen[st.Name] = true
		l := t.pools[st.Name]
		if l == nil {
			l = &poolLoop{}
			t.pools[st.Name] = l
		}
		room := t.bounds.MaxServerConnections - total
		d, ok := l.observe(now, st, t.bounds, room, t.cfg.Cooldown, t.cfg.Step)
		if !ok {
			continue
		}
		d.Mode = t.cfg.PoolSize
		if d.Mode == ModeOn && !t.knobs.SetPoolSize(st.Name, d.To) {
			continue
		}
		if d.Mode == ModeOn {
			total += d.To - d.From
		}
		t.decided(d)
		out = append(out, d)
	}
	for name := range t.pools {
		if !seen[name] {
			delete(t.pools, name) // the pool is gone
		}
	}
	return out
}

// stepReplicas runs loop 3 and applies its changes (mode on).
func (t *Tuner) stepReplicas(now time.Time, rk ReplicaKnobs) []Decision {
	ds := t.replicas.observe(now, rk.Replicas(), t.cfg.Cooldown)
	for i := range ds {
		d := &ds[i]
		d.Mode = t.cfg.ReplicaWeights
		if d.Mode == ModeOn {
			db, addr, _ := strings.Cut(d.Target, "/")
			rk.SetReplicaWeight(db, addr, int64(d.To))
		}
		t.decided(*d)
	}
	return ds
}

// decided logs and counts d once and keeps it for SHOW TUNER.
func (t *Tuner) decided(d Decision) {
	if t.log != nil {
		t.log.Info("tuner decision", "loop", d.Loop, "mode", string(d.Mode), "target", d.Target, "action", d.Action,
			"from", d.From, "to", d.To, "reason", d.Reason, "inputs", d.Inputs)
	}
	if t.metrics != nil {
		t.metrics.decisions.WithLabelValues(d.Loop, d.Action).Inc()
	}
	t.decisions = append(t.decisions, d)
	if len(t.decisions) > maxDecisions {
		t.decisions = t.decisions[len(t.decisions)-maxDecisions:]
	}
}

// Queries returns the top statements by key (SortKeys), with their texts
// normalised.
func (t *Tuner) Queries(key string) ([]QueryRow, error) {
	rows, err := t.queries.rows(key, t.cfg.TopQueries)
	if err != nil {
		return nil, err
	}
	fps := make([]uint64, len(rows))
	for i, r := range rows {
		fps[i] = r.Fingerprint
	}
	pending := t.queries.pendingTexts(fps)
	if len(pending) == 0 {
		return rows, nil
	}
	for fp, raw := range pending {
		text, ok := "", false
		if t.normalize != nil && len(raw) < maxSampleText {
			text, ok = t.normalize(raw)
		}
		if !ok {
			text = "(not normalised) " + raw[:min(len(raw), 200)]
		}
		t.queries.setText(fp, text)
	}
	return t.queries.rows(key, t.cfg.TopQueries)
}

func sortStrings(s []string) { sort.Strings(s) }
