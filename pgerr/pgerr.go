package pgerr

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// Code is a SQLSTATE. Only the constants below are raised by pgone itself.
type Code string

// The SQLSTATEs pgone raises. Names follow PostgreSQL's errcodes.txt.
const (
	InvalidAuthorizationSpecification Code = "28000"
	InvalidPassword                   Code = "28P01"
	InvalidCatalogName                Code = "3D000"
	TooManyConnections                Code = "53300"
	ProtocolViolation                 Code = "08P01"
	ConnectionFailure                 Code = "08006"
	TransactionResolutionUnknown      Code = "08007"
	AdminShutdown                     Code = "57P01"
	QueryCanceled                     Code = "57014"
	IdleInTransactionTimeout          Code = "25P03"
	IdleSessionTimeout                Code = "57P05"
	FeatureNotSupported               Code = "0A000"
	InsufficientPrivilege             Code = "42501"
	SyntaxError                       Code = "42601"
	InvalidParameterValue             Code = "22023"
	ObjectNotInPrerequisiteState      Code = "55000"
	ConfigFileError                   Code = "F0000"
	InternalError                     Code = "XX000"
)

// ServerRejectedConnection: pgone refuses to connect a write to a primary
// it cannot trust (split brain, proxy/failover.go). Its own block keeps the
// list above as it was.
const ServerRejectedConnection Code = "08004"

// Severity values as PostgreSQL spells them on the wire.
const (
	SeverityError = "ERROR"
	SeverityFatal = "FATAL"
)

// Error is an error raised by pgone itself.
type Error struct {
	Severity string
	Code     Code
	Message  string
	Detail   string
	Hint     string
}

// New returns an ERROR-severity error with a formatted message.
func New(code Code, format string, args ...any) *Error {
	return &Error{Severity: SeverityError, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Fatal returns a FATAL-severity error: the client connection ends after it.
func Fatal(code Code, format string, args ...any) *Error {
	return &Error{Severity: SeverityFatal, Code: code, Message: fmt.Sprintf(format, args...)}
}

// WithHint returns a copy of e carrying hint; e itself is left unchanged.
func (e *Error) WithHint(hint string) *Error {
	c := *e
	c.Hint = hint
	return &c
}

// WithDetail returns a copy of e carrying detail; e itself is left unchanged.
func (e *Error) WithDetail(detail string) *Error {
	c := *e
	c.Detail = detail
	return &c
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s: %s (SQLSTATE %s)", e.Severity, e.Message, e.Code)
}

// CodeOf returns the SQLSTATE carried by err, or "" when it carries none.
func CodeOf(err error) string {
	var pe *Error
	if errors.As(err, &pe) {
		return string(pe.Code)
	}
	var pge *pgconn.PgError
	if errors.As(err, &pge) {
		return pge.Code
	}
	return ""
}

// ToResponse turns any error into the ErrorResponse a client should see.
// PostgreSQL's own errors keep every field; pgone's errors keep theirs; any
// other error becomes an internal error with its text as the message.
func ToResponse(err error) *pgproto3.ErrorResponse {
	var pe *Error
	if errors.As(err, &pe) {
		sev := pe.Severity
		if sev == "" {
			sev = SeverityError
		}
		return &pgproto3.ErrorResponse{
			Severity:            sev,
			SeverityUnlocalized: sev,
			Code:                string(pe.Code),
			Message:             pe.Message,
			Detail:              pe.Detail,
			Hint:                pe.Hint,
		}
	}
	var pge *pgconn.PgError
	if errors.As(err, &pge) {
		return &pgproto3.ErrorResponse{
			Severity:            pge.Severity,
			SeverityUnlocalized: pge.SeverityUnlocalized,
			Code:                pge.Code,
			Message:             pge.Message,
			Detail:              pge.Detail,
			Hint:                pge.Hint,
			Position:            pge.Position,
			InternalPosition:    pge.InternalPosition,
			InternalQuery:       pge.InternalQuery,
			Where:               pge.Where,
			SchemaName:          pge.SchemaName,
			TableName:           pge.TableName,
			ColumnName:          pge.ColumnName,
			DataTypeName:        pge.DataTypeName,
			ConstraintName:      pge.ConstraintName,
			File:                pge.File,
			Line:                pge.Line,
			Routine:             pge.Routine,
		}
	}
	return &pgproto3.ErrorResponse{
		Severity:            SeverityError,
		SeverityUnlocalized: SeverityError,
		Code:                string(InternalError),
		Message:             err.Error(),
	}
}
