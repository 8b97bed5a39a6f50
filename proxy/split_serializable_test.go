package proxy_test

import (
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestSplitSerializableOnPrimary: a standby refuses serializable
// transactions ("cannot use serializable mode in a hot standby"), read
// only or not, and so every read of a session whose default isolation is
// serializable. Such reads run on the primary: BEGIN ISOLATION LEVEL
// SERIALIZABLE READ ONLY, default_transaction_isolation set by SET, by
// startup options and by a database default. Control: the same reads of
// a plain session run on the replica.
func TestSplitSerializableOnPrimary(t *testing.T) {
	t.Parallel()
	const db = "splitserial"
	p, plain := readySplit(t, db, nil)
	ctx := testCtx(t)
	primary := cluster.Primary.Port

	tx, err := plain.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.Serializable, AccessMode: pgx.ReadOnly})
	if err != nil {
		t.Fatalf("BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY: %v", err)
	}
	if got := serverPort(t, ctx, tx, portQuery); got != primary {
		t.Errorf("read in a serializable read-only transaction ran on %d, want the primary %d", got, primary)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// A fresh client: plain's reads now wait for the replica to have what
	// ran on the primary (read_your_writes).
	control := connect(t, p.DSN(appUser, appPassword, db))
	tx, err = control.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		t.Fatal(err)
	}
	if got := serverPort(t, ctx, tx, portQuery); got != cluster.Replica.Port {
		t.Errorf("control: read in a repeatable read read-only transaction ran on %d, want the replica %d", got, cluster.Replica.Port)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	set := connect(t, p.DSN(appUser, appPassword, db))
	if _, err := set.Exec(ctx, "SET default_transaction_isolation = serializable"); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement} {
		if got := serverPort(t, ctx, set, portQuery, mode); got != primary {
			t.Errorf("read after SET default_transaction_isolation = serializable (%v) ran on %d, want the primary %d", mode, got, primary)
		}
	}
	jdbc := connect(t, p.DSN(appUser, appPassword, db)) // what JDBC's setTransactionIsolation sends
	if _, err := jdbc.Exec(ctx, "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE"); err != nil {
		t.Fatal(err)
	}
	if got := serverPort(t, ctx, jdbc, portQuery); got != primary {
		t.Errorf("read after SET SESSION CHARACTERISTICS ... SERIALIZABLE ran on %d, want the primary %d", got, primary)
	}
	opts := connect(t, p.DSN(appUser, appPassword, db)+" options='-c default_transaction_isolation=SERIALIZABLE'")
	if got := serverPort(t, ctx, opts, portQuery); got != primary {
		t.Errorf("read with default_transaction_isolation from startup options ran on %d, want the primary %d", got, primary)
	}

	// A database default, set through pgone (DDL: the monitor reads role
	// settings again).
	if _, err := plain.Exec(ctx, "ALTER DATABASE "+db+" SET default_transaction_isolation = serializable"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Exec(testCtx(t), "ALTER DATABASE "+db+" RESET default_transaction_isolation") })
	eventually(t, "reads of new clients on the primary after ALTER DATABASE ... SET default_transaction_isolation", func() bool {
		var port int
		err := connect(t, p.DSN(appUser, appPassword, db)).QueryRow(ctx, portQuery).Scan(&port)
		return err == nil && port == primary
	})
	fresh := connect(t, p.DSN(appUser, appPassword, db))
	for i := 0; i < 20; i++ {
		if got := serverPort(t, ctx, fresh, portQuery); got != primary {
			t.Fatalf("read %d of a session with a serializable database default ran on %d, want the primary %d", i, got, primary)
		}
	}
}
