// Command pgone is the PostgreSQL proxy. This package is wiring only: flags,
// loading the config, building the parts, serving and signals.
//
//	pgone serve --config FILE   run the proxy
//	pgone check --config FILE   validate a config and print each problem with its key path
//	pgone demo [--port 6432]    a throwaway primary and replica behind pgone
//	pgone version               print the version
package main
