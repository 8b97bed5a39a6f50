// Package pgerr holds the SQLSTATE codes pgone itself raises and the one
// place where an error becomes a PostgreSQL ErrorResponse.
//
// Errors that come from PostgreSQL (*pgconn.PgError) are forwarded with every
// field unchanged. pgone's own errors are *Error values built with New; the
// Code type keeps a raw string from being passed where a SQLSTATE belongs.
// Error values are never mutated after construction, so they may be shared.
package pgerr
