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
