package pool

import (
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgone/pgone/internal/wire"
)

// serverError gives pool's callers the same *pgconn.PgError that pgx
// builds from the same ErrorResponse, every field included.
func TestServerErrorMatchesPgconn(t *testing.T) {
	er := pgproto3.ErrorResponse{Severity: "FEHLER", SeverityUnlocalized: "ERROR", Code: "23505",
		Message: "duplicate key", Detail: "Key (id)=(1) already exists.", Hint: "h", Position: 7,
		InternalPosition: 2, InternalQuery: "iq", Where: "w", SchemaName: "public", TableName: "t",
		ColumnName: "id", DataTypeName: "int4", ConstraintName: "t_pkey", File: "nbtinsert.c", Line: 666,
		Routine: "_bt_check_unique"}
	frame, err := er.Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := serverError(wire.Body(frame))
	if err != nil {
		t.Fatal(err)
	}
	if want := pgconn.ErrorResponseToPgError(&er); *got != *want {
		t.Fatalf("serverError = %+v\nwant %+v", got, want)
	}
	if _, err := serverError([]byte("Cxx")); err == nil {
		t.Fatal("a malformed body decoded")
	}
}
