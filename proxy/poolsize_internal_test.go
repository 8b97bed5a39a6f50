package proxy

import (
	"testing"

	"github.com/pgone/pgone/pool"
)

// TestSnapshotPoolSize resolves a pool's size as attach resolves its
// database: its own entry, else the "*" entry, else the default.
func TestSnapshotPoolSize(t *testing.T) {
	snap := &snapshot{
		cfg: Config{Databases: map[string]Database{
			"own":            {PoolSize: 7},
			"inherits":       {},
			WildcardDatabase: {PoolSize: 3},
		}},
		poolCfg: pool.Config{PoolSize: 20},
	}
	for db, want := range map[string]int{"own": 7, "inherits": 20, "elsewhere": 3} {
		if got := snap.poolSize(db); got != want {
			t.Errorf("poolSize(%q) = %d, want %d", db, got, want)
		}
	}
	delete(snap.cfg.Databases, WildcardDatabase)
	if got := snap.poolSize("elsewhere"); got != 20 {
		t.Errorf("poolSize without a * entry = %d, want the default 20", got)
	}
}

// TestConfigPoolModeFor resolves a client's pool mode as attach, SHOW
// POOLS and pgone check do: the user's, else the database entry's (its
// own or the "*" entry's), else pool.mode.
func TestConfigPoolModeFor(t *testing.T) {
	cfg := Config{
		Databases: map[string]Database{
			"own":            {PoolMode: pool.ModeSession},
			"inherits":       {},
			WildcardDatabase: {PoolMode: pool.ModeTransaction},
		},
		Users: map[string]User{
			"pinned": {PoolMode: pool.ModeSession},
			"plain":  {},
		},
	}
	for _, tc := range []struct {
		db, user string
		want     pool.Mode
	}{
		{"own", "plain", pool.ModeSession},
		{"inherits", "plain", pool.ModeTransaction}, // the default below
		{"elsewhere", "plain", pool.ModeTransaction},
		{"elsewhere", "pinned", pool.ModeSession},
		{"elsewhere", "unknown", pool.ModeTransaction},
	} {
		db, ok := cfg.DatabaseFor(tc.db)
		if !ok {
			t.Fatalf("DatabaseFor(%q): no entry, want the * entry", tc.db)
		}
		if got := cfg.PoolModeFor(db, tc.user, pool.ModeTransaction); got != tc.want {
			t.Errorf("PoolModeFor(%q, %q) = %s, want %s", tc.db, tc.user, got, tc.want)
		}
	}
	delete(cfg.Databases, WildcardDatabase)
	if _, ok := cfg.DatabaseFor("elsewhere"); ok {
		t.Errorf("DatabaseFor without a * entry found one")
	}
}
