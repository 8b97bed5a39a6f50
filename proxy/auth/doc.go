// Package auth is the server side of PostgreSQL client authentication:
// pgone checks a client's password itself, before any server connection is
// touched, so a bad login costs no pool slot.
//
// It owns three things:
//   - Secret: a configured password in whichever form the config gives it
//     (plaintext, an md5 hash or a SCRAM verifier as pg_authid stores them),
//     parsed once so that logins never pay for PBKDF2 on plaintext users.
//   - the exchanges: trust, password (cleartext), md5 and SCRAM-SHA-256
//     (RFC 5802/7677, with the same checks and SQLSTATEs as PostgreSQL's
//     auth-scram.c). Users stored as md5 hashes fall back from SCRAM to md5,
//     as in PostgreSQL.
//   - Authenticator: runs one exchange per call over a Conn the caller
//     provides. Unknown users get a full exchange with a mock secret whose
//     salt is stable per user name, and the same 28P01 error as a wrong
//     password, so user names cannot be probed.
//
// Lifecycle: the proxy builds one Authenticator at start and calls
// Authenticate once per client, after the startup message and before it
// sends AuthenticationOk (which is the caller's job). No per-connection
// state outlives the call.
//
// Concurrency: Authenticator and Secret are immutable after construction and
// safe for concurrent use; a Conn is used only by the goroutine that called
// Authenticate.
package auth
