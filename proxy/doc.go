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
//  1. startup: SSLRequest/GSSENCRequest, CancelRequest (handled and closed),
//     StartupMessage (protocol 3.0; newer minors are negotiated down), under
//     client_login_timeout;
//  2. authentication, done by pgone (package proxy/auth);
//  3. attach: a server connection is acquired from the pool, the client's
//     startup parameters are applied to it, and the client receives
//     AuthenticationOk, ParameterStatus, BackendKeyData and ReadyForQuery;
//  4. relay: the session goroutine copies client frames to the server; a
//     second goroutine copies server frames to the client. They share a few
//     fields under session.mu: outstanding requests, transaction status and
//     the drain flag;
//  5. close: the server connection is reset (ROLLBACK if needed, DISCARD
//     ALL) and returned to its pool when it is idle at a message boundary,
//     otherwise closed.
//
// In transaction mode a server that dies under a request is answered for
// (lost.go): each waiting request gets one error, then ReadyForQuery;
// 08007 (outcome unknown) when the request may have committed, 08006
// (rolled back) only when nothing can have. query_timeout (timeout.go, both
// modes) cancels a request on its server, and gives up the server if the
// cancel goes unanswered.
//
// Concurrency: a session's state belongs to its goroutine; the only state it
// shares with its server pump is guarded by session.mu, and writes to the
// client are serialized by session.wmu. Server holds the registry of
// sessions and cancel keys under Server.mu.
package proxy
