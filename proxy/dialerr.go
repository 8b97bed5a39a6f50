package proxy

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgone/pgone/pgerr"
)

// serverUnavailable turns an error from acquiring a server connection into
// what the client is told. pgone's own errors (53300 at query_wait_timeout,
// 57P01) pass. A server that stayed full (53300) or starting up (57P03)
// until query_wait_timeout becomes pgone's 53300, and any other failure to
// reach or log in to a server a generic 08006: server addresses, dial and
// TLS (x509) details go to pgone's log, not to clients. PostgreSQL's own
// answer to a completed login, such as 3D000, keeps its code and text.
func (ss *session) serverUnavailable(err error) error {
	var pe *pgerr.Error
	if errors.As(err, &pe) {
		return err
	}
	ss.log.Info("no server connection for client", "database", ss.database, "user", ss.user, "err", err)
	var pge *pgconn.PgError
	switch {
	case errors.Is(err, context.Canceled):
		return pgerr.New(pgerr.AdminShutdown, "pgone is shutting down")
	case errors.As(err, &pge) && (pge.Code == string(pgerr.TooManyConnections) || pge.Code == "57P03"):
		return pgerr.New(pgerr.TooManyConnections,
			"no server connection available for database %q: the server accepts no more connections", ss.database)
	case errors.As(err, &pge) && !errors.Is(err, context.DeadlineExceeded):
		return pgerr.New(pgerr.Code(pge.Code), "%s", pge.Message)
	}
	return pgerr.New(pgerr.ConnectionFailure, "could not connect to the server for database %q", ss.database)
}

// replicaUnavailable is serverUnavailable for a replica's pool. Only
// pgone's own errors (the replica queue's query_wait_timeout, shutdown)
// pass: a replica that refuses logins because it is shutting down, starting
// up (57P03) or full (53300) is unreachable like one that refuses TCP, so
// the read goes to the primary instead of failing with 53300.
func (ss *session) replicaUnavailable(err error) error {
	var pe *pgerr.Error
	if errors.As(err, &pe) || errors.Is(err, context.Canceled) {
		return ss.serverUnavailable(err)
	}
	ss.log.Info("no replica connection for client", "database", ss.database, "user", ss.user, "err", err)
	return pgerr.New(pgerr.ConnectionFailure, "could not connect to a replica for database %q", ss.database)
}
