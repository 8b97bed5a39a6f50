package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
)

// verdict is the ledger read back from the primary against what the
// writers were told.
type verdict struct {
	Acked, RolledBack, Unknown int // ids in each bucket
	Rows                       int // rows in the table
	Lost                       []int64
	Twice                      []int64 // ids stored more than once
	RolledBackPresent          []int64
	UnknownPresent             int
	UnknownWhy                 []string // each id of unknown outcome: committed or not, and why unknown
	Unrecorded                 int      // ids stored that no writer attempted
}

// verifyLedger reads every id and its count on the primary directly, as
// the superuser, and checks each writer's ledger against it.
func verifyLedger(ctx context.Context, e *Env, ledgers []*ledger) (verdict, error) {
	rows, err := query(ctx, directDSN(e.cluster.Primary, database), "SELECT id, count(*) FROM ledger GROUP BY id")
	if err != nil {
		return verdict{}, fmt.Errorf("read the ledger on the primary: %w", err)
	}
	stored := make(map[int64]int, len(rows))
	for _, r := range rows {
		id, err1 := strconv.ParseInt(r[0], 10, 64)
		n, err2 := strconv.Atoi(r[1])
		if err1 != nil || err2 != nil {
			return verdict{}, fmt.Errorf("ledger row %q", r)
		}
		stored[id] = n
	}
	return judgeLedger(stored, ledgers), nil
}

// judgeLedger checks the writers' ledgers against stored, the number of
// rows the table holds for each id.
func judgeLedger(stored map[int64]int, ledgers []*ledger) verdict {
	var v verdict
	for id, n := range stored {
		v.Rows += n
		if n > 1 {
			v.Twice = append(v.Twice, id)
		}
	}
	slices.Sort(v.Twice)
	attempted := map[int64]bool{}
	for _, l := range ledgers {
		v.Acked += len(l.acked)
		v.RolledBack += len(l.rolledBack)
		v.Unknown += len(l.unknown)
		for _, id := range l.acked {
			attempted[id] = true
			if stored[id] == 0 {
				v.Lost = append(v.Lost, id)
			}
		}
		for _, id := range l.rolledBack {
			attempted[id] = true
			if stored[id] > 0 {
				v.RolledBackPresent = append(v.RolledBackPresent, id)
			}
		}
		for _, id := range l.unknown {
			attempted[id] = true
			state := "absent"
			if stored[id] > 0 {
				v.UnknownPresent++
				state = "committed"
			}
			v.UnknownWhy = append(v.UnknownWhy, fmt.Sprintf("id %d %s; %s", id, state, l.why[id]))
		}
	}
	for id := range stored {
		if !attempted[id] {
			v.Unrecorded++
		}
	}
	return v
}
