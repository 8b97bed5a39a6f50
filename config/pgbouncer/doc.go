// Package pgbouncer translates a PgBouncer configuration (pgbouncer.ini and
// its auth_file, userlist.txt) into a pgone.yaml, for `pgone
// import-pgbouncer`.
//
// It owns the readers of PgBouncer's formats (INI sections, libpq-style
// connection strings in [databases], quoted "user" "secret" lines) and the
// key-by-key mapping onto pgone's schema. It emits only keys the config
// package decodes (its tests load the output with config.Parse, which
// rejects unknown keys), and every PgBouncer setting it cannot carry over is
// returned as an Untranslated item with the reason, never dropped silently.
// A setting that equals what pgone does anyway is not listed.
//
// Secrets from userlist.txt are copied as they are: pgone's users accept
// plaintext, md5 hashes and SCRAM verifiers for client authentication, and
// log in to servers as the client with plaintext or by SCRAM passthrough.
// An md5 secret of a user who reaches a database without a forced user= is
// listed (the client would log in to pgone, then be refused by the
// server). auth_user/auth_query become auth_query, with auth_user's
// password taken from the userlist as PgBouncer does.
//
// Everything here is pure (bytes in, bytes out) except Import, which reads
// the files. No state is shared.
package pgbouncer
