package proxy_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/proxy"
)

// reloadPoolSize reloads p with its own config but pool_size size.
func reloadPoolSize(p *testProxy, size int) error {
	cfg := *p.Cfg
	cfg.Pool.PoolSize = size
	return p.Srv.Reload(cfg.Proxy, cfg.Pool)
}

// TestTxModeReloadPoolSizeDownAndUpUnderLoad reloads pool_size 20 -> 4
// with the console's RELOAD while 20 transaction-mode clients are busy:
// once their in-flight requests end, the pool holds at most 4 servers
// (SHOW POOLS and pg_stat_activity agree), and clients keep being served.
// A RELOAD back to 20 lets the pool grow to 20 again. Before the pool
// owned its size, every Acquire re-imposed the size each session saw at
// login, so 20 stayed.
func TestTxModeReloadPoolSizeDownAndUpUnderLoad(t *testing.T) {
	t.Parallel()
	const db, clients = "poolresize", 20
	ownDatabase(t, db)
	// RELOAD as cmd wires it: reread the file (here: the next pool_size)
	// and apply it with Server.Reload.
	var nextSize atomic.Int64
	var live atomic.Pointer[testProxy]
	p := startObservedProxy(t, func(c *config.Config) {
		c.Pool.Mode = pool.ModeTransaction
		c.Pool.PoolSize = clients
	}, func(s *proxy.Server) {
		s.SetReloader(func() error { return reloadPoolSize(live.Load(), int(nextSize.Load())) })
	})
	live.Store(p.testProxy)
	admin := p.console(t, adminUser, adminPassword)
	super := connect(t, cluster.Primary.DSN("postgres", "postgres", "postgres"))
	backends := func() int {
		var n int
		if err := super.QueryRow(testCtx(t), "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND datname = $2", appUser, db).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	servers := func() int64 {
		r := show(t, admin, "SHOW POOLS").row("database", db, "user", appUser)
		if r == nil {
			return 0
		}
		return num(t, r, "sv_active") + num(t, r, "sv_idle") + num(t, r, "sv_login")
	}

	ctx, stop := context.WithCancel(context.Background())
	var served atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		conn := connect(t, p.DSN(appUser, appPassword, db))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				var one int
				err := conn.QueryRow(ctx, "SELECT 1 FROM pg_sleep(0.02)").Scan(&one)
				if err != nil && ctx.Err() == nil {
					t.Errorf("client query: %v", err)
					return
				}
				served.Add(1)
			}
		}()
	}
	defer func() { stop(); wg.Wait() }()

	eventually(t, "more than 4 servers under 20 busy clients", func() bool { return servers() > 4 })

	reload := func(size int) {
		t.Helper()
		nextSize.Store(int64(size))
		if _, err := admin.Exec(testCtx(t), "RELOAD").ReadAll(); err != nil {
			t.Fatalf("RELOAD to pool_size %d: %v", size, err)
		}
	}
	reload(4)
	eventually(t, "at most 4 servers in SHOW POOLS and pg_stat_activity after pool_size 20 -> 4", func() bool {
		return servers() <= 4 && backends() <= 4
	})
	before := served.Load()
	eventually(t, "clients served on the smaller pool", func() bool { return served.Load() >= before+2*clients })
	if n := servers(); n > 4 {
		t.Fatalf("%d servers after the pool settled at 4", n)
	}
	if n := backends(); n > 4 {
		t.Fatalf("pg_stat_activity shows %d server connections after the pool settled at 4", n)
	}

	reload(clients)
	eventually(t, "the pool back to 20 servers after pool_size 4 -> 20", func() bool {
		return servers() == clients && backends() == clients
	})
	stop()
	wg.Wait()
	// No client saw an error (checked in each client) and none hangs.
	var one int
	if err := connect(t, p.DSN(appUser, appPassword, db)).QueryRow(testCtx(t), "SELECT 1").Scan(&one); err != nil {
		t.Fatal(err)
	}
}

// TestReloadKeepsATunedPoolSize: a pool whose size was changed at run time
// (the tuner's SetSize) keeps it across a reload that does not change its
// configured size; a reload that does change it applies the new size.
func TestReloadKeepsATunedPoolSize(t *testing.T) {
	t.Parallel()
	p := startProxy(t, func(c *config.Config) { c.Pool.Mode = pool.ModeTransaction; c.Pool.PoolSize = 4 })
	conn := p.Connect(t)
	if _, err := conn.Exec(testCtx(t), "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	sizeOf := func() (pool.Key, int) {
		for _, st := range p.Pools.Status() {
			if st.Key.Database == appDB && st.Key.Replica == "" {
				return st.Key, st.Size
			}
		}
		t.Fatal("no pool for the app database")
		return pool.Key{}, 0
	}
	key, _ := sizeOf()
	p.Pools.SetSize(key, 9) // as the tuner does
	cfg := *p.Cfg
	cfg.Proxy.Limits.QueryTimeout++ // another setting
	if err := p.Srv.Reload(cfg.Proxy, cfg.Pool); err != nil {
		t.Fatal(err)
	}
	if _, n := sizeOf(); n != 9 {
		t.Errorf("after a reload of another setting the pool's size is %d; want the tuned 9", n)
	}
	if err := reloadPoolSize(p, 6); err != nil {
		t.Fatal(err)
	}
	if _, n := sizeOf(); n != 6 {
		t.Errorf("after a reload of pool_size 6 the pool's size is %d; want 6", n)
	}
}
