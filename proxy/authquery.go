package proxy

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgone/pgone/pgerr"
	"github.com/pgone/pgone/proxy/auth"
)

// lookupSecret runs auth_query for a client user missing from users and
// returns its secret as the server stores it, or "" when the server knows
// no such login (the exchange then fails as for an unknown user). It
// connects as auth_query.user to the server of the database the client
// asked for, as PgBouncer does; each lookup is one short connection.
func (ss *session) lookupSecret(snap *snapshot, req *startupRequest) (string, error) {
	aq := snap.cfg.AuthQuery
	db, ok := snap.cfg.DatabaseFor(req.database)
	if !ok || req.database == AdminDatabase {
		// The console has no server to ask, and its users are in users.
		// An unknown database gives 3D000 after authentication, as for
		// listed users.
		return "", nil
	}
	dbname := aq.Database
	if dbname == "" {
		if dbname = db.DBName; dbname == "" {
			dbname = req.database
		}
	}
	dsn := fmt.Sprintf("host=%s port=%d dbname=%s user=%s sslmode=%s",
		dsnQuote(db.Host), db.Port, dsnQuote(dbname), dsnQuote(aq.User), dsnQuote(snap.poolCfg.ServerTLS.SSLMode))
	if snap.poolCfg.ServerTLS.RootCert != "" {
		dsn += " sslrootcert=" + dsnQuote(snap.poolCfg.ServerTLS.RootCert)
	}
	pc, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return "", err
	}
	pc.Password = aq.Password
	pc.RuntimeParams = map[string]string{}
	ctx, cancel := context.WithTimeout(ss.srv.ctx, snap.poolCfg.ServerConnectTimeout)
	defer cancel()
	conn, err := pgconn.ConnectConfig(ctx, pc)
	if err != nil {
		ss.log.Warn("auth_query: cannot connect as auth_query.user", "user", aq.User, "database", dbname, "err", err)
		return "", pgerr.Fatal(pgerr.ConnectionFailure, "cannot look up user %q: server unavailable", req.user)
	}
	defer conn.Close(context.Background())
	res := conn.ExecParams(ctx, aq.Query, [][]byte{[]byte(req.user)}, nil, nil, nil).Read()
	if res.Err != nil {
		ss.log.Warn("auth_query failed", "user", aq.User, "database", dbname, "err", res.Err)
		return "", pgerr.Fatal(pgerr.ConnectionFailure, "cannot look up user %q: auth_query failed", req.user)
	}
	if len(res.Rows) != 1 || len(res.Rows[0]) < 2 || res.Rows[0][1] == nil {
		return "", nil
	}
	return string(res.Rows[0][1]), nil
}

// authQuerySecret is the secret to authenticate a user missing from users
// with: nil when auth_query is off or knows no such user.
func (ss *session) authQuerySecret(snap *snapshot, req *startupRequest) (*auth.Secret, error) {
	if snap.cfg.AuthQuery.User == "" {
		return nil, nil
	}
	secret, err := ss.lookupSecret(snap, req)
	if err != nil || secret == "" {
		return nil, err
	}
	sec, err := auth.ParseSecret(req.user, secret)
	if err != nil {
		ss.log.Warn("auth_query returned an unusable secret", "user", req.user, "err", err)
		return nil, nil
	}
	ss.queriedSecret = secret
	return sec, nil
}

func dsnQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
