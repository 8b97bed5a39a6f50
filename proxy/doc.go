// Package proxy is pgone's client side: the listener, one goroutine per
// client session, startup (TLS, protocol negotiation, parameters),
// authentication, the relay between client and server, cancel requests and
// graceful shutdown.
//
// Layers: Server accepts connections and owns the shared, immutable config
// snapshot; a session owns one client connection from startup to close; the
// relay moves whole protocol frames (package internal/wire) in both
// directions and decodes only what it must inspect (ReadyForQuery, errors).
//
// Lifecycle of a session, phase by phase:
//  1. startup: SSLRequest/GSSENCRequest (each at most once), CancelRequest
//     (handled and closed), StartupMessage (protocol 3.0; newer minors are
//     negotiated down), under client_login_timeout and counted against
//     max_logins_in_progress until authentication ends;
//  2. authentication, done by pgone (package proxy/auth), its messages
//     bounded at 65,535 bytes as in PostgreSQL (max_message_size applies
//     only after it);
//  3. attach: a server connection is acquired from the pool, the client's
//     startup parameters are applied to it, and the client receives
//     AuthenticationOk, ParameterStatus, BackendKeyData and ReadyForQuery;
//  4. relay: the session goroutine copies client frames to the server; a
//     second goroutine copies server frames to the client. They share a few
//     fields under session.mu: outstanding requests, transaction status and
//     the drain flag;
//  5. close: the server connection is reset (DISCARD ALL) and returned to
//     its pool when it is idle at a message boundary outside a transaction,
//     otherwise closed (a client that left inside a transaction leaves no
//     backend to the next client).
//
// Session mode's server pump (relay.go pumpServer) has transaction mode's
// replies shape: a handler per reply kind (ReadyForQuery, CopyInResponse,
// ErrorResponse; the rest passes through) returns a reply value, and
// transaction mode's deliverLocked writes and flushes it. The lost-server
// outcomes (lost.go), the FATAL and query_timeout rewrites are shared too.
//
// In session mode the relay also re-applies the client's startup
// parameters after statements that may reset settings (reapply.go), since
// PostgreSQL's reset values are those of the server's own startup.
//
// The result cache has no hooks in session mode (cachesession.go): a
// session-mode client's database counts as written on its instance while
// it stays, and each transaction of it that may have written bumps the
// database's epoch, through Redis to every instance, before its idle
// ReadyForQuery is written to the client.
//
// A cancel request reaches a server only while its session holds it with a
// request outstanding, and that server goes back to its pool only once the
// cancel is done (cancel.go, pool Conn.StartCancel).
//
// Transaction mode is a request pipeline, one file per stage, read top to
// bottom in relayTx and serveRequest (txrelay.go):
//
//   - request (request.go): collect a whole request (up to Sync, Query,
//     FunctionCall or Flush, or 1 MiB of it), COPY data passed straight
//     through; intercept what needs no server (the next request after a
//     transaction was lost, Parses and Closes pgone answers itself). The
//     intake of a request and shutdown's idle check are one step under
//     session.mu (intake.go): a request taken in is served, and the drain
//     closes the session at its end;
//   - plan (plan.go): the router's decision per statement, taken once and
//     only when a stage asks (the lexical fast paths still skip parsing);
//     split routing, session effects and pins, lost-server outcomes and the
//     hooks all read it;
//   - hooks before send (hooks.go): BeforeSend may answer the request;
//   - backend (backend.go, shapes.go): the held server, or one acquired on
//     the plan's route (primary, or a replica for a read), the wait for it,
//     the prelude that brings it to the client's settings, the result-shape
//     check of prepared statements new to it; writes to it; its loss; the
//     end of the session;
//   - render (render.go, statements.go, deallocate.go): the prelude, then
//     the request with statement names mapped and Parses injected, then a
//     settings snapshot if settings changed; every message sent is an
//     expectation (expect.go) so that replies can be matched;
//   - replies (replies.go, inline.go): read inline by the session goroutine
//     for a quick answer, else by a pump goroutine; each frame goes to the
//     handler of its kind (ErrorResponse, ReadyForQuery, any other reply),
//     which returns a reply value: forward or swallow, release the server;
//     then who reads next, the write to the client, the release at
//     ReadyForQuery I;
//   - hooks after reply and after commit (hooks.go, hooks_frames.go,
//     hooks_lsn.go): AfterReply with the reply frames the client got, the
//     outcome, rows, bytes, server and wait time; AfterCommit with the
//     tables a committed transaction wrote and a WAL position covering the
//     commit.
//
// Hooks (Server.SetHooks, Server.AddHooks; hookset.go) are the extension
// points for the result cache and the tuner, side by side: each is called
// in the order added, each call guarded on its own. They are called from
// the session's goroutine or its pump, one at a time per session:
//
//   - BeforeSend(plan) once a request is planned, before a server is
//     acquired; it may answer the request (the cache's lookup): the first
//     answer wins, and the later hooks are told (AnsweredHooks);
//   - AfterReply(plan, sample) once the request's last ReadyForQuery is
//     written to the client (the cache's fill, the tuner's sample). The
//     sample's Frames are the forwarded frames byte for byte, copied as
//     they pass into a pooled buffer only while hooks are set, and valid
//     only during the call; past 4 MiB they are dropped (Complete false);
//   - AfterCommit(info) after AfterReply when the request committed writes
//     (invalidation). Its LSN is the primary's position sampled after the
//     commit by the database's replica monitor, the fence read-your-writes
//     uses; it costs that monitor a query, so only hooks that ask for it
//     (CommitLSNHooks) get it and wait for it.
//
// They see a read-only PlanView; a hook that panics is logged and the
// request goes on; with no hooks the pipeline builds no view and copies
// no frame.
//
// The result cache (Server.SetCache; cachehooks.go, cacherules.go,
// admin_cache.go) is such hooks, with a per-session handle reached through
// the PlanView, and one more call: before EVERY request is sent (also in a
// transaction, where BeforeSend is not called) it marks what the request
// may write, so nothing of those tables is served or filled until the
// write ends (at the transaction's idle ReadyForQuery; a lost server or a
// request never sent counts as a commit). A miss runs on the primary. A
// database whose cache mode is off (its cache_mode, else cache.mode, read
// from the snapshot per request, so RELOAD applies) skips lookups and
// fills, never the marks: its writes invalidate what other database names
// for the same server database cache.
//
// The tuner reaches the proxy through cmd/pgone, never by import: its
// samples are hooks added beside the cache's (AddHooks; the cache's hits
// reach it through AnsweredHooks), its console commands are SetShow
// extensions (admin_ext.go: SHOW QUERIES, SHOW TUNER), its cache
// admission is a CacheAdmission the cache rules consult for databases in
// mode auto (cacheadmission.go), and its replica weights replace the configured
// ones in pickReplica (replicaweights.go).
//
// In transaction mode a server that dies under a request is answered for
// (lost.go): each waiting request gets one error, then ReadyForQuery;
// 08007 (outcome unknown) when the request may have committed, 08006
// (rolled back) only when nothing can have. Session mode tells its one
// FATAL by the same rules (lostsession.go). query_timeout (timeout.go, both
// modes) cancels a request on its server, and gives up the server if the
// cancel goes unanswered.
//
// Concurrency: a session's state belongs to its goroutine (the plan among
// it); the only state it shares with its server pump is guarded by
// session.mu, writes to the client are serialized by session.wmu, and
// writes to the server by session.swmu. Server holds the registry of
// sessions and cancel keys under Server.mu.
package proxy
