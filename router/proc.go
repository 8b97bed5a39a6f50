package router

// Function volatility from the primary's catalog. The router does no I/O:
// the proxy runs ProcVolatilityQuery on the primary (refreshed, and again
// after DDL) and hands the rows to NewProcVolatility; the result is the
// Session's Functions.

// ProcVolatilityQuery lists every function by schema and name with the
// most volatile of its overloads ('i' < 's' < 'v' in byte order).
const ProcVolatilityQuery = "SELECT n.nspname, p.proname, max(p.provolatile::text) FROM pg_catalog.pg_proc p" +
	" JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace GROUP BY 1, 2"

// ProcVolatility is pg_proc's volatility ('i', 's', 'v') by bare name and
// by "schema.name"; a bare name shared by several schemas has the most
// volatile of them. It implements Functions and is read only once built:
// sessions share it.
type ProcVolatility map[string]byte

// NewProcVolatility builds the table from ProcVolatilityQuery's rows
// (schema, name, volatility); malformed rows are skipped.
func NewProcVolatility(rows [][]string) ProcVolatility {
	t := make(ProcVolatility, 2*len(rows))
	for _, r := range rows {
		if len(r) != 3 || len(r[2]) != 1 {
			continue
		}
		v := r[2][0]
		t[r[0]+"."+r[1]] = v
		if old, ok := t[r[1]]; !ok || v > old {
			t[r[1]] = v
		}
	}
	return t
}

// Volatility implements Functions.
func (t ProcVolatility) Volatility(name string) (byte, bool) {
	v, ok := t[name]
	return v, ok
}
