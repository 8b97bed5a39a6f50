package pgmsg_test

import (
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgone/pgone/internal/pgmsg"
)

// Every type constant is the byte pgproto3 writes for the message it
// names, in its direction: a swapped letter here would be a protocol bug
// everywhere the constant is used.
func TestTypesMatchPgproto3(t *testing.T) {
	for _, c := range []struct {
		name string
		got  byte
		msg  interface{ Encode([]byte) ([]byte, error) }
	}{
		{"Bind", pgmsg.Bind, &pgproto3.Bind{}},
		{"Close", pgmsg.Close, &pgproto3.Close{ObjectType: 'S'}},
		{"CopyData", pgmsg.CopyData, &pgproto3.CopyData{}},
		{"CopyDone", pgmsg.CopyDone, &pgproto3.CopyDone{}},
		{"CopyFail", pgmsg.CopyFail, &pgproto3.CopyFail{}},
		{"Describe", pgmsg.Describe, &pgproto3.Describe{ObjectType: 'S'}},
		{"Execute", pgmsg.Execute, &pgproto3.Execute{}},
		{"Flush", pgmsg.Flush, &pgproto3.Flush{}},
		{"FunctionCall", pgmsg.FunctionCall, &pgproto3.FunctionCall{}},
		{"Parse", pgmsg.Parse, &pgproto3.Parse{}},
		{"PasswordMessage", pgmsg.PasswordMessage, &pgproto3.PasswordMessage{}},
		{"SASLInitialResponse", pgmsg.PasswordMessage, &pgproto3.SASLInitialResponse{AuthMechanism: "SCRAM-SHA-256"}},
		{"Query", pgmsg.Query, &pgproto3.Query{}},
		{"Sync", pgmsg.Sync, &pgproto3.Sync{}},
		{"Terminate", pgmsg.Terminate, &pgproto3.Terminate{}},
		{"Authentication", pgmsg.Authentication, &pgproto3.AuthenticationOk{}},
		{"BackendKeyData", pgmsg.BackendKeyData, &pgproto3.BackendKeyData{}},
		{"BindComplete", pgmsg.BindComplete, &pgproto3.BindComplete{}},
		{"CloseComplete", pgmsg.CloseComplete, &pgproto3.CloseComplete{}},
		{"CommandComplete", pgmsg.CommandComplete, &pgproto3.CommandComplete{}},
		{"CopyBothResponse", pgmsg.CopyBothResponse, &pgproto3.CopyBothResponse{}},
		{"CopyInResponse", pgmsg.CopyInResponse, &pgproto3.CopyInResponse{}},
		{"CopyOutResponse", pgmsg.CopyOutResponse, &pgproto3.CopyOutResponse{}},
		{"DataRow", pgmsg.DataRow, &pgproto3.DataRow{}},
		{"EmptyQueryResponse", pgmsg.EmptyQueryResponse, &pgproto3.EmptyQueryResponse{}},
		{"ErrorResponse", pgmsg.ErrorResponse, &pgproto3.ErrorResponse{}},
		{"FunctionCallResponse", pgmsg.FunctionCallResponse, &pgproto3.FunctionCallResponse{}},
		{"NegotiateProtocolVersion", pgmsg.NegotiateProtocolVersion, &pgproto3.NegotiateProtocolVersion{}},
		{"NoData", pgmsg.NoData, &pgproto3.NoData{}},
		{"NoticeResponse", pgmsg.NoticeResponse, &pgproto3.NoticeResponse{}},
		{"NotificationResponse", pgmsg.NotificationResponse, &pgproto3.NotificationResponse{}},
		{"ParameterDescription", pgmsg.ParameterDescription, &pgproto3.ParameterDescription{}},
		{"ParameterStatus", pgmsg.ParameterStatus, &pgproto3.ParameterStatus{}},
		{"ParseComplete", pgmsg.ParseComplete, &pgproto3.ParseComplete{}},
		{"PortalSuspended", pgmsg.PortalSuspended, &pgproto3.PortalSuspended{}},
		{"ReadyForQuery", pgmsg.ReadyForQuery, &pgproto3.ReadyForQuery{TxStatus: 'I'}},
		{"RowDescription", pgmsg.RowDescription, &pgproto3.RowDescription{}},
	} {
		b, err := c.msg.Encode(nil)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if b[0] != c.got {
			t.Errorf("pgmsg.%s = %q, pgproto3 writes %q", c.name, c.got, b[0])
		}
	}
	if !pgmsg.EndsRequest(pgmsg.Sync) || !pgmsg.EndsRequest(pgmsg.Query) || !pgmsg.EndsRequest(pgmsg.FunctionCall) || pgmsg.EndsRequest(pgmsg.Execute) {
		t.Error("EndsRequest: Sync, Query and FunctionCall end a request, Execute does not")
	}
}

// The one-byte values that are not message types: transaction status,
// Describe/Close targets, encryption answers, as PostgreSQL's protocol
// documentation gives them.
func TestNonMessageBytes(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want byte
	}{
		{"TxIdle", pgmsg.TxIdle, 'I'}, {"TxInTx", pgmsg.TxInTx, 'T'}, {"TxFailed", pgmsg.TxFailed, 'E'},
		{"TargetStatement", pgmsg.TargetStatement, 'S'}, {"TargetPortal", pgmsg.TargetPortal, 'P'},
		{"SSLAccepted", pgmsg.SSLAccepted, 'S'}, {"GSSAccepted", pgmsg.GSSAccepted, 'G'}, {"EncryptionRefused", pgmsg.EncryptionRefused, 'N'},
	} {
		if c.got != c.want {
			t.Errorf("pgmsg.%s = %q, want %q", c.name, c.got, c.want)
		}
	}
}
