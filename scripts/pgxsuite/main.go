// Command pgxsuite is the Go half of scripts/pgx-suite.sh, which runs pgx's
// own test suite against PostgreSQL directly and through pgone.
//
//	pgxsuite up -target T -pgone bin/pgone -env FILE -log FILE
//	    starts a throwaway cluster (with a streaming replica for the split
//	    target), creates pgx's test database and roles, starts pgone in front
//	    of it (except for the direct target), writes the PGX_TEST_* variables
//	    to FILE as shell exports, and serves until SIGTERM or SIGINT; then it
//	    stops pgone and PostgreSQL and removes the cluster directory.
//	    With -suite regress (scripts/pg-regress.sh) it creates PostgreSQL's
//	    regression database instead, pgone serves every database ("*") under
//	    the superuser's own login, and FILE holds PGHOST, PGPORT, PGUSER...
//	pgxsuite summarize -out FILE TARGET=RESULTS.json ...
//	    reads `go test -json` output per target and writes a Markdown summary:
//	    counts per target, and the tests that fail through pgone but not
//	    directly.
//	pgxsuite regress-summary -out FILE TARGET=DIR ...
//	    the same for PostgreSQL's regression suite (scripts/pg-regress.sh):
//	    DIR.out is pg_regress's output, DIR/regression.diffs its diffs.
//
// It is a developer tool, not part of pgone: its unit tests start nothing and `make test`
// does not start it.
package main

import (
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: pgxsuite up|summarize|regress-summary [flags]")
		return 2
	}
	switch args[0] {
	case "up":
		return cmdUp(args[1:], stderr)
	case "summarize":
		return cmdSummarize(args[1:], stdout, stderr)
	case "regress-summary":
		return cmdRegressSummary(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "pgxsuite: unknown command %q\n", args[0])
	return 2
}
