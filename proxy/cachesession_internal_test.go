package proxy

import (
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgone/pgone/internal/pgmsg"
	"github.com/pgone/pgone/router"
)

// sessionStep is a client message forwarded (send), or a ReadyForQuery
// with status ready taken off, after which a bump is due or not.
type sessionStep struct {
	send  pgproto3.FrontendMessage
	ready byte
	due   bool
	copy  int // a CopyInResponse: that many Syncs were swallowed
}

func q(s string) sessionStep { return sessionStep{send: &pgproto3.Query{String: s}} }
func rfq(status byte, due bool) sessionStep {
	return sessionStep{ready: status, due: due}
}

var (
	syncStep = sessionStep{send: &pgproto3.Sync{}}
	execStep = sessionStep{send: &pgproto3.Execute{}}
)

func parseStep(name, text string) sessionStep {
	return sessionStep{send: &pgproto3.Parse{Name: name, Query: text}}
}
func bindStep(name string) sessionStep {
	return sessionStep{send: &pgproto3.Bind{PreparedStatement: name}}
}

// TestSessionWrites: which ReadyForQuery of a session-mode client makes
// the pump bump the database first (cachesession.go): the idle one that
// ends a transaction in which a request may have written, one request at
// a time even when pipelined; not after a ROLLBACK or reads only.
func TestSessionWrites(t *testing.T) {
	const idle, inTx, failed = pgmsg.TxIdle, pgmsg.TxInTx, pgmsg.TxFailed
	const upd, sel = "UPDATE t SET v = 1", "SELECT v FROM t"
	tests := []struct {
		name  string
		steps []sessionStep
	}{
		{"autocommit write", []sessionStep{q(upd), rfq(idle, true)}},
		{"read", []sessionStep{q(sel), rfq(idle, false)}},
		{"volatile function", []sessionStep{q("SELECT nextval('s')"), rfq(idle, true)}},
		{"DDL", []sessionStep{q("CREATE TABLE x (a int)"), rfq(idle, true)}},
		{"pipelined read then write", []sessionStep{q(sel), q(upd), rfq(idle, false), rfq(idle, true)}},
		{"pipelined write then read", []sessionStep{q(upd), q(sel), rfq(idle, true), rfq(idle, false)}},
		{"committed block", []sessionStep{q("BEGIN"), rfq(inTx, false), q(upd), rfq(inTx, false), q(sel), rfq(inTx, false), q("COMMIT"), rfq(idle, true)}},
		{"read-only block", []sessionStep{q("BEGIN"), rfq(inTx, false), q(sel), rfq(inTx, false), q("COMMIT"), rfq(idle, false)}},
		{"rolled back block", []sessionStep{q("BEGIN"), rfq(inTx, false), q(upd), rfq(inTx, false), q("ROLLBACK"), rfq(idle, false)}},
		{"failed block", []sessionStep{q("BEGIN"), q(upd), q("ROLLBACK"), rfq(inTx, false), rfq(failed, false), rfq(idle, false)}},
		{"COMMIT AND CHAIN commits in 'T'", []sessionStep{q("BEGIN"), rfq(inTx, false), q(upd), rfq(inTx, false),
			q("COMMIT AND CHAIN"), rfq(inTx, true), q("ROLLBACK"), rfq(idle, false)}},
		{"writes after COMMIT AND CHAIN are a new set", []sessionStep{q("BEGIN"), rfq(inTx, false), q(upd), rfq(inTx, false),
			q("COMMIT AND CHAIN"), rfq(inTx, true), q(upd), rfq(inTx, false), q("COMMIT"), rfq(idle, true)}},
		{"ROLLBACK AND CHAIN drops the writes since the last commit only", []sessionStep{q("BEGIN"), rfq(inTx, false),
			q(upd), rfq(inTx, false), q("COMMIT AND CHAIN"), rfq(inTx, true),
			q(upd), rfq(inTx, false), q("ROLLBACK AND CHAIN"), rfq(inTx, false), q(sel), rfq(inTx, false), q("COMMIT"), rfq(idle, false)}},
		{"prepared COMMIT AND CHAIN", []sessionStep{
			parseStep("c", "COMMIT AND CHAIN"), syncStep, rfq(idle, false),
			q("BEGIN"), rfq(inTx, false), q(upd), rfq(inTx, false),
			bindStep("c"), execStep, syncStep, rfq(inTx, true)}},
		{"COMMIT AND CHAIN in one string", []sessionStep{q("BEGIN; " + upd + "; COMMIT AND CHAIN"), rfq(inTx, true)}},
		{"COMMIT PREPARED", []sessionStep{q("COMMIT PREPARED 'g'"), rfq(idle, true)}},
		{"COMMIT and ROLLBACK in one string", []sessionStep{q("BEGIN; " + upd + "; COMMIT; ROLLBACK"), rfq(idle, true)}},
		{"named write prepared, run later", []sessionStep{
			parseStep("w", upd), syncStep, rfq(idle, false),
			bindStep("w"), execStep, syncStep, rfq(idle, true),
			bindStep("w"), execStep, syncStep, rfq(idle, true)}},
		{"named read prepared, run later", []sessionStep{
			parseStep("r", sel), syncStep, rfq(idle, false),
			bindStep("r"), execStep, syncStep, rfq(idle, false)}},
		{"unnamed read", []sessionStep{parseStep("", sel), bindStep(""), execStep, syncStep, rfq(idle, false)}},
		{"statement never seen", []sessionStep{bindStep("x"), execStep, syncStep, rfq(idle, true)}},
		{"SQL PREPARE forgets the verdicts", []sessionStep{
			parseStep("r", sel), syncStep, rfq(idle, false),
			q("DEALLOCATE r"), rfq(idle, false),
			q("PREPARE r AS " + upd), rfq(idle, true),
			bindStep("r"), execStep, syncStep, rfq(idle, true)}},
		{"Parse of a new text under a name", []sessionStep{
			parseStep("r", sel), syncStep, rfq(idle, false),
			sessionStep{send: &pgproto3.Close{ObjectType: 'S', Name: "r"}}, parseStep("r", upd), syncStep, rfq(idle, false),
			bindStep("r"), execStep, syncStep, rfq(idle, true)}},
		{"FunctionCall", []sessionStep{{send: &pgproto3.FunctionCall{Function: 1}}, rfq(idle, true)}},
		{"COPY's swallowed Sync", []sessionStep{
			parseStep("", "COPY t FROM STDIN"), bindStep(""), execStep, syncStep, {copy: 1},
			{send: &pgproto3.CopyDone{}}, syncStep, rfq(idle, true)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ss := &session{srv: &Server{router: router.NewRouter(100)}}
			ss.cacheSessionWritesOn(nil, nil)
			for i, st := range tt.steps {
				switch {
				case st.send != nil:
					frame, err := st.send.Encode(nil)
					if err != nil {
						t.Fatal(err)
					}
					switch frame[0] {
					case pgmsg.Query, pgmsg.Parse, pgmsg.Bind, pgmsg.Execute, pgmsg.Sync, pgmsg.FunctionCall:
						ss.trackSessionLocked(frame)
					}
				case st.copy > 0:
					ss.cacheCopyInLocked(st.copy)
				default:
					ss.cacheReadyLocked(st.ready)
					if due := ss.cacheBumpDueLocked(false); due != st.due {
						t.Fatalf("step %d: ReadyForQuery %c: bump due %v, want %v", i, st.ready, due, st.due)
					}
				}
			}
		})
	}
}
