package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/tuner"
)

// pgSettings is the tuner's loop 4 source: one short connection per
// primary server (each database entry with its own server login: user
// and password), made for each reading (once a minute by default) and
// closed after. Entries without a login, "*" and duplicates of a server
// already read are skipped. pgone's own connections are counted from the
// pools.
type pgSettings struct {
	cfg   *config.Config
	pools *pool.Manager
	log   *slog.Logger
}

type settingsTarget struct {
	name string
	dsn  string
}

func (s *pgSettings) targets() []settingsTarget {
	seen := map[string]bool{}
	var out []settingsTarget
	names := make([]string, 0, len(s.cfg.Proxy.Databases))
	for name := range s.cfg.Proxy.Databases {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		d := s.cfg.Proxy.Databases[name]
		if name == "*" || d.User == "" || d.Password == "" {
			continue
		}
		addr := net.JoinHostPort(d.Host, strconv.Itoa(d.Port))
		if seen[addr] {
			continue
		}
		seen[addr] = true
		dsn := fmt.Sprintf("host=%s port=%d dbname=%s user=%s password=%s sslmode=prefer application_name=pgone-tuner connect_timeout=5",
			quoteDSN(d.Host), d.Port, quoteDSN(d.ServerDBName(name)), quoteDSN(d.User), quoteDSN(d.Password))
		out = append(out, settingsTarget{name: name, dsn: dsn})
	}
	return out
}

// quoteDSN quotes a keyword/value connection string value.
func quoteDSN(v string) string {
	out := []byte{'\''}
	for i := 0; i < len(v); i++ {
		if v[i] == '\'' || v[i] == '\\' {
			out = append(out, '\\')
		}
		out = append(out, v[i])
	}
	return string(append(out, '\''))
}

const settingsQuery = `SELECT pg_size_bytes(current_setting('work_mem')),
	current_setting('max_connections')::int,
	pg_size_bytes(current_setting('shared_buffers')),
	(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int,
	(SELECT coalesce(sum(blks_hit), 0) FROM pg_stat_database)::bigint,
	(SELECT coalesce(sum(blks_read), 0) FROM pg_stat_database)::bigint,
	EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements')`

const spillsQuery = `SELECT left(query, 200), calls, temp_blks_written FROM pg_stat_statements
	WHERE temp_blks_written > 0 ORDER BY temp_blks_written DESC LIMIT 5`

// Snapshot reads every target; a target that fails is logged and left
// out.
func (s *pgSettings) Snapshot(ctx context.Context) ([]tuner.PGSnapshot, error) {
	var out []tuner.PGSnapshot
	pgone := s.pools.Total()
	for _, tg := range s.targets() {
		snap, err := s.read(ctx, tg)
		if err != nil {
			s.log.Warn("tuner: cannot read the server's settings", "database", tg.name, "err", err)
			continue
		}
		snap.PgoneServers = pgone
		out = append(out, snap)
	}
	return out, nil
}

func (s *pgSettings) read(ctx context.Context, tg settingsTarget) (tuner.PGSnapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, tg.dsn)
	if err != nil {
		return tuner.PGSnapshot{}, err
	}
	defer conn.Close(context.Background())
	snap := tuner.PGSnapshot{Server: tg.name}
	if err := conn.QueryRow(ctx, settingsQuery).Scan(&snap.WorkMem, &snap.MaxConnections, &snap.SharedBuffers,
		&snap.Connections, &snap.BlocksHit, &snap.BlocksRead, &snap.Statements); err != nil {
		return snap, err
	}
	if !snap.Statements {
		return snap, nil
	}
	rows, err := conn.Query(ctx, spillsQuery)
	if err != nil {
		snap.Statements = false // installed but not preloaded: no numbers
		return snap, nil
	}
	for rows.Next() {
		var sp tuner.Spill
		if err := rows.Scan(&sp.Query, &sp.Calls, &sp.TempBlocksWritten); err != nil {
			return snap, err
		}
		snap.Spills = append(snap.Spills, sp)
	}
	if rows.Err() != nil {
		snap.Statements = false
	}
	return snap, nil
}

// Apply sets a reloadable setting for the whole server and reloads it.
func (s *pgSettings) Apply(ctx context.Context, server, name, value string) error {
	if name != "work_mem" {
		return fmt.Errorf("pgone applies work_mem only, not %s", name)
	}
	for _, tg := range s.targets() {
		if tg.name != server {
			continue
		}
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, tg.dsn)
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		// ALTER SYSTEM takes no parameters: the value is pgone's own text
		// (bytesText), quoted as a literal.
		if _, err := conn.Exec(ctx, "ALTER SYSTEM SET work_mem = "+quoteLiteral(value)); err != nil {
			return err
		}
		_, err = conn.Exec(ctx, "SELECT pg_reload_conf()")
		return err
	}
	return fmt.Errorf("no server %q", server)
}

func quoteLiteral(v string) string {
	out := []byte{'\''}
	for i := 0; i < len(v); i++ {
		if v[i] == '\'' {
			out = append(out, '\'')
		}
		out = append(out, v[i])
	}
	return string(append(out, '\''))
}
