package router

import (
	"regexp"
	"testing"
)

// TestNames checks every enum String is a distinct snake_case word (they
// label metrics) and that out-of-range values do not panic.
func TestNames(t *testing.T) {
	word := regexp.MustCompile(`^[a-z]+(_[a-z]+)*$`)
	check := func(kind string, n int, name func(int) string) {
		seen := map[string]bool{}
		for i := 0; i < n; i++ {
			s := name(i)
			if !word.MatchString(s) || s == "unknown" || seen[s] {
				t.Errorf("%s %d: bad or duplicate name %q", kind, i, s)
			}
			seen[s] = true
		}
		if s := name(200); s != "unknown" {
			t.Errorf("%s 200: %q, want unknown", kind, s)
		}
	}
	check("Target", 2, func(i int) string { return Target(i).String() })
	check("Reason", int(numReasons), func(i int) string { return Reason(i).String() })
	check("Pin", int(numPins), func(i int) string { return Pin(i).String() })
	check("TxEffect", int(numTxEffects), func(i int) string { return TxEffect(i).String() })
}

// TestReasonLabels pins every Reason's String: it is the reason label of
// pgone_route_requests_total (and of the unparsed counter), which
// dashboards and alerts match on. The proxy's reasons kept the strings
// they had as proxy constants before they joined this enum.
func TestReasonLabels(t *testing.T) {
	want := map[Reason]string{
		ReasonNotRead: "not_read", ReasonRead: "read", ReasonWrite: "write",
		ReasonLockingClause: "locking_clause", ReasonVolatileFunction: "volatile_function",
		ReasonWriteFunction: "write_function", ReasonDataModifyingCTE: "data_modifying_cte",
		ReasonSelectInto: "select_into", ReasonMultiStatement: "multi_statement",
		ReasonTransaction: "transaction", ReasonTransactionControl: "transaction_control",
		ReasonHintPrimary: "hint_primary", ReasonHintReplica: "hint_replica",
		ReasonParseError: "parse_error", ReasonEmpty: "empty", ReasonDDL: "ddl",
		ReasonUtility: "utility", ReasonServerDependent: "server_dependent",
		ReasonTooLong: "too_long", ReasonTooComplex: "too_complex", ReasonSerializable: "serializable",
		// The proxy's, for a whole request.
		ReasonNoUsableReplica: "no_usable_replica", ReasonReadYourWrites: "read_your_writes",
		ReasonReplicaUnreachable: "replica_unreachable", ReasonUnknownStatement: "unknown_statement",
		ReasonFunctionCall: "function_call",
		ReasonCacheFill:    "cache_fill",
	}
	if len(want) != int(numReasons) {
		t.Fatalf("%d reasons pinned, %d defined: pin the new one's label", len(want), numReasons)
	}
	for r, label := range want {
		if got := r.String(); got != label {
			t.Errorf("Reason %d: label %q, want %q", r, got, label)
		}
	}
}
