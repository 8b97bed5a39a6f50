package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/config/pgbouncer"
)

// cmdImportPgBouncer writes the pgone.yaml equivalent of a PgBouncer
// configuration and lists on stderr what it could not carry over. It exits
// 1 when the result does not validate (so a script does not deploy it),
// after writing it anyway so the user can finish it by hand.
func cmdImportPgBouncer(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("import-pgbouncer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "", "write the config to this file instead of stdout")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() < 1 || fs.NArg() > 2 {
		fmt.Fprintln(stderr, "usage: pgone import-pgbouncer [-o pgone.yaml] pgbouncer.ini [userlist.txt]")
		return 2
	}
	res, err := pgbouncer.Import(fs.Arg(0), fs.Arg(1))
	if err != nil {
		fmt.Fprintln(stderr, "pgone import-pgbouncer:", err)
		return 1
	}
	if *out == "" {
		_, err = stdout.Write(res.YAML)
	} else {
		err = os.WriteFile(*out, res.YAML, 0o600) // it holds passwords
	}
	if err != nil {
		fmt.Fprintln(stderr, "pgone import-pgbouncer:", err)
		return 1
	}
	for _, u := range res.Untranslated {
		fmt.Fprintf(stderr, "not translated: %s\n", u)
	}
	if _, err := config.Parse(res.YAML); err != nil {
		printConfigError(stderr, "the result needs editing", err)
		return 1
	}
	return 0
}
