package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/internal/pgtest"
	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/tuner"
)

// TestTunerSettingsAdviceAppliesWorkMem: with pg_stat_statements loaded
// and work_mem at 64kB, a sort that spills is seen in the reading; the
// settings loop (mode on, apply_pg_settings) advises a larger work_mem
// and applies it: a new session on the server has the new value. The
// advice on max_connections (100 < pgone's 300) is shown, not applied.
func TestTunerSettingsAdviceAppliesWorkMem(t *testing.T) {
	c := pgtest.New(t, pgtest.Options{Settings: map[string]string{
		"shared_preload_libraries": "pg_stat_statements", "work_mem": "64kB", "max_connections": "100"}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dsn := c.Primary.DSN(pgtest.SuperUser, pgtest.SuperPassword, "postgres")
	direct, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close(context.Background())
	for _, sql := range []string{"CREATE EXTENSION pg_stat_statements",
		"SELECT count(*) FROM (SELECT g FROM generate_series(1, 200000) g ORDER BY g DESC) s",
		"SELECT count(*) FROM (SELECT g FROM generate_series(1, 200000) g ORDER BY g DESC) s"} {
		if _, err := direct.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	cfg, err := config.Parse([]byte(fmt.Sprintf(`databases:
  app:
    host: 127.0.0.1
    port: %d
    dbname: postgres
    user: %s
    password: %s
users:
  alice:
    password: x
tuner:
  pg_settings: "on"
  apply_pg_settings: true
`, c.Primary.Port, pgtest.SuperUser, pgtest.SuperPassword)))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	pools := pool.NewManager(cfg.Pool, log)
	defer pools.Close()
	src := &pgSettings{cfg: cfg, pools: pools, log: log}
	snaps, err := src.Snapshot(ctx)
	if err != nil || len(snaps) != 1 || !snaps[0].Statements || len(snaps[0].Spills) == 0 || snaps[0].WorkMem != 64<<10 {
		t.Fatalf("Snapshot = %+v, %v; want one server, work_mem 64kB, pg_stat_statements with the spilling sort", snaps, err)
	}
	tu := tuner.New(cfg.Tuner, tuner.PoolBounds{MaxServerConnections: cfg.Pool.MaxServerConnections}, nil, nil, log)
	tu.SetSettingsSource(src)
	actions := map[string]string{}
	var applied string
	for _, d := range tu.StepSettings(ctx, time.Now()) {
		actions[d.Target] = d.Action
		if d.Target == "app/work_mem" {
			applied = d.Inputs
		}
	}
	if actions["app/work_mem"] != "apply" || actions["app/max_connections"] != "advise" {
		t.Fatalf("decisions %v; want work_mem applied and max_connections advised", actions)
	}
	fresh, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close(context.Background())
	var workMem string
	if err := fresh.QueryRow(ctx, "SHOW work_mem").Scan(&workMem); err != nil {
		t.Fatal(err)
	}
	if workMem == "64kB" {
		t.Errorf("work_mem still 64kB after the tuner applied %s", applied)
	}
}
