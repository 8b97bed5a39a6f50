package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
)

// plantFaults makes the verdict's own faults, so a run with -plant shows
// that each invariant can fail: it deletes one acknowledged id, stores
// another twice and a row no writer attempted, all directly on the
// primary, and opens a server connection as pgone's login that pgone does
// not know. release closes that connection.
func plantFaults(ctx context.Context, e *Env, ledgers []*ledger) (release func(), err error) {
	var ids []int64
	for _, l := range ledgers {
		ids = append(ids, l.acked...)
	}
	if len(ids) < 2 {
		return nil, errors.New("plant: fewer than 2 acknowledged writes")
	}
	stray := int64(1) << 50 // no writer number reaches this
	for _, sql := range []string{
		fmt.Sprintf("DELETE FROM ledger WHERE id = %d", ids[0]),
		fmt.Sprintf("INSERT INTO ledger (id, writer, payload) SELECT id, writer, payload FROM ledger WHERE id = %d", ids[1]),
		fmt.Sprintf("INSERT INTO ledger (id, writer, payload) VALUES (%d, 0, 'stray')", stray),
	} {
		if _, err := query(ctx, directDSN(e.cluster.Primary, database), sql+" RETURNING id"); err != nil {
			return nil, fmt.Errorf("plant: %s: %w", sql, err)
		}
	}
	conn, err := pgconn.Connect(ctx, e.cluster.Primary.DSN(clientUser, clientPassword, database))
	if err != nil {
		return nil, fmt.Errorf("plant: leaked connection: %w", err)
	}
	e.logf("planted: id %d deleted, id %d stored twice, stray id %d, a connection as %s pgone does not hold", ids[0], ids[1], stray, clientUser)
	return func() { _ = conn.Close(context.Background()) }, nil
}
