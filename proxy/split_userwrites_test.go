package proxy_test

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/internal/pgtest"
	"github.com/pgone/pgone/proxy"
)

// otherUser is a second client user (see clientUsers); pgone logs in to
// the server as app for it too.
const (
	otherUser     = "pwuser"
	otherPassword = "pwuser-pw"
)

// testReadUserWrites: with read_user_writes and the replica applying WAL
// 500ms late, a user that writes on one connection and reads at once on
// another never misses its write (read_your_writes would: the control),
// while another user's reads stay on the replica.
func testReadUserWrites(t *testing.T, cl *pgtest.Cluster) {
	p := splitProxy(t, cl, appDB, func(c *config.Config) {
		db := c.Proxy.Databases[appDB]
		db.Consistency = proxy.ReadUserWrites
		c.Proxy.Databases[appDB] = db
	})
	ctx := testCtx(t)
	writer := connect(t, p.DSN(appUser, appPassword, appDB))
	sameUser := connect(t, p.DSN(appUser, appPassword, appDB))
	other := connect(t, p.DSN(otherUser, otherPassword, appDB))
	if _, err := writer.Exec(ctx, "CREATE TABLE IF NOT EXISTS ruw (v int PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	if err := cl.WaitReplicaCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	waitForReplicaReads(t, other, cl)
	eventually(t, "the same user's reads back on the replica", func() bool {
		return serverPort(t, ctx, sameUser, portQuery) == cl.Replica.Port
	})
	const n = 100
	misses, otherOnReplica := 0, 0
	for i := 1; i <= n; i++ {
		if _, err := writer.Exec(ctx, "INSERT INTO ruw VALUES ($1)", 1_000_000+i); err != nil {
			t.Fatal(err)
		}
		var got int
		err := sameUser.QueryRow(ctx, "SELECT v FROM ruw WHERE v = $1", 1_000_000+i).Scan(&got)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			misses++
		case err != nil:
			t.Fatal(err)
		}
		if serverPort(t, ctx, other, portQuery) == cl.Replica.Port {
			otherOnReplica++
		}
	}
	if misses > 0 {
		t.Errorf("read_user_writes: %d of %d reads on another connection of the writing user missed its write", misses, n)
	}
	if otherOnReplica != n {
		t.Errorf("read_user_writes: %d of %d reads of another user on the replica; want all: that user wrote nothing", otherOnReplica, n)
	}
	// Control: read_your_writes lets the same user's other connection miss.
	cfg := *p.Cfg
	cfg.Proxy.Databases = map[string]proxy.Database{}
	for name, db := range p.Cfg.Proxy.Databases {
		if name == appDB {
			db.Consistency = proxy.ReadYourWrites
		}
		cfg.Proxy.Databases[name] = db
	}
	if err := p.Srv.Reload(cfg.Proxy, cfg.Pool); err != nil {
		t.Fatal(err)
	}
	controlMisses := 0
	for i := 1; i <= 20; i++ {
		if _, err := writer.Exec(ctx, "INSERT INTO ruw VALUES ($1)", 2_000_000+i); err != nil {
			t.Fatal(err)
		}
		var got int
		if err := sameUser.QueryRow(ctx, "SELECT v FROM ruw WHERE v = $1", 2_000_000+i).Scan(&got); errors.Is(err, pgx.ErrNoRows) {
			controlMisses++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if controlMisses == 0 {
		t.Errorf("read_your_writes: another connection of the writer never missed a write 500ms behind: the control cannot fail")
	}
}

// TestSplitReplicaShareUnderWrites measures what share of reads still
// reach the replica while one user writes without pause, for readers of
// that user and of another, under read_user_writes and read_all_writes,
// and checks that no reader of the writing user ever reads a value older
// than a write acknowledged before its read began.
func TestSplitReplicaShareUnderWrites(t *testing.T) {
	t.Parallel()
	const db = "splitshare"
	replicaDatabase(t, cluster, db)
	for _, tc := range []struct {
		level proxy.Consistency
		pace  time.Duration // between the writer's commits; 0: none
	}{{proxy.ReadUserWrites, 0}, {proxy.ReadAllWrites, 0}, {proxy.ReadUserWrites, 20 * time.Millisecond}, {proxy.ReadAllWrites, 20 * time.Millisecond}} {
		level := tc.level
		t.Run(fmt.Sprintf("%s/pace=%s", level, tc.pace), func(t *testing.T) {
			p := splitProxy(t, cluster, db, func(c *config.Config) {
				d := c.Proxy.Databases[db]
				d.Consistency = level
				c.Proxy.Databases[db] = d
			})
			ctx := testCtx(t)
			writer := connect(t, p.DSN(appUser, appPassword, db))
			if _, err := writer.Exec(ctx, "CREATE TABLE IF NOT EXISTS share (id int PRIMARY KEY, v bigint); INSERT INTO share VALUES (1, 0) ON CONFLICT DO NOTHING"); err != nil {
				t.Fatal(err)
			}
			var base int64
			if err := writer.QueryRow(ctx, "SELECT v FROM share WHERE id = 1").Scan(&base); err != nil {
				t.Fatal(err)
			}
			if err := cluster.WaitReplicaCaughtUp(ctx); err != nil {
				t.Fatal(err)
			}
			sameUser := connect(t, p.DSN(appUser, appPassword, db))
			other := connect(t, p.DSN(otherUser, otherPassword, db))
			waitForReplicaReads(t, other, cluster)

			var acked atomic.Int64 // the last value the writer saw committed
			acked.Store(base)
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() { // the writer: one UPDATE after another, paced or not
				defer wg.Done()
				var tick <-chan time.Time
				if tc.pace > 0 {
					ticker := time.NewTicker(tc.pace)
					defer ticker.Stop()
					tick = ticker.C
				}
				for v := base + 1; ; v++ {
					select {
					case <-stop:
						return
					default:
					}
					if tick != nil {
						select {
						case <-stop:
							return
						case <-tick:
						}
					}
					if _, err := writer.Exec(ctx, "UPDATE share SET v = $1 WHERE id = 1", v); err != nil {
						t.Error(err)
						return
					}
					acked.Store(v)
				}
			}()
			type tally struct{ reads, onReplica, stale atomic.Int64 }
			read := func(conn *pgx.Conn, tl *tally) {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					before := acked.Load()
					var v int64
					var port int
					if err := conn.QueryRow(ctx, "SELECT v, inet_server_port() FROM share WHERE id = 1").Scan(&v, &port); err != nil {
						t.Error(err)
						return
					}
					tl.reads.Add(1)
					if port == cluster.Replica.Port {
						tl.onReplica.Add(1)
					}
					if v < before {
						tl.stale.Add(1)
					}
				}
			}
			var same, oth tally
			wg.Add(2)
			go read(sameUser, &same)
			go read(other, &oth)
			// Run until each reader has done enough reads for a share.
			eventually(t, "500 reads by each reader", func() bool {
				return same.reads.Load() >= 500 && oth.reads.Load() >= 500
			})
			close(stop)
			wg.Wait()
			sr, sp, ss := same.reads.Load(), same.onReplica.Load(), same.stale.Load()
			or, op := oth.reads.Load(), oth.onReplica.Load()
			t.Logf("%s, a commit every %s: writer %d commits; same user: %d reads, %d on the replica (%.1f%%), %d stale; other user: %d reads, %d on the replica (%.1f%%)",
				level, tc.pace, acked.Load()-base, sr, sp, pct(sp, sr), ss, or, op, pct(op, or))
			if ss > 0 {
				t.Errorf("%s: %d reads of the writing user saw a value older than a write acknowledged before they began", level, ss)
			}
			if level == proxy.ReadUserWrites && op*10 < or*9 {
				t.Errorf("read_user_writes: %d of %d reads of a user that does not write on the replica; want over 90%%", op, or)
			}
		})
	}
}

func pct(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}
