package proxy

import (
	"context"
	"log/slog"
	"time"

	"github.com/pgone/pgone/pool"
)

// commitLSNWait bounds how long AfterCommit waits for the primary's
// position; past it the hook gets LSN 0 (unknown).
const commitLSNWait = time.Second

// commitLSN returns a position covering a commit of database whose
// ReadyForQuery came at committed, as read-your-writes fences a client's
// reads after its write (split.go): the primary's insert position the
// database's replica monitor sampled after that time, asked for now if it
// has none yet. 0 without a monitor (no replicas: nothing replays it) or
// when the primary does not answer in time.
func (s *Server) commitLSN(ctx context.Context, database string, committed time.Time, log *slog.Logger) pool.LSN {
	sets := s.splits.Load()
	if sets == nil {
		return 0
	}
	set := (*sets)[database]
	if set == nil || set.mon == nil {
		return 0
	}
	ctx, cancel := context.WithTimeout(ctx, commitLSNWait)
	defer cancel()
	lsn, err := set.mon.PositionAfter(ctx, committed)
	if err != nil {
		log.Debug("commit LSN for the hooks unknown", "err", err)
		return 0
	}
	return lsn
}
