// Command relaycore is issue 14's micro-benchmark: how much CPU does the
// socket-serving core of a proxy cost per transaction, before any protocol
// work? It relays bytes between each client and its own upstream server
// connection, one to one, and understands nothing of what it relays, in
// one of three cores:
//
//   - goroutine: two goroutines per client (client to server, server to
//     client) over plain net.Conns: the ordinary Go proxy;
//   - goroutine-raw: the same over internal/rawconn, pgone's socket layer
//     (raw read and write system calls, the netpoller only for waiting);
//   - epoll: PgBouncer's model: -loops threads, each sleeping in its own
//     epoll_wait for all of its sockets (SO_REUSEPORT listeners, so the
//     kernel spreads the clients), level-triggered, non-blocking sockets,
//     one shared read buffer per loop.
//
// The bench runs it as the targets relay-goroutine, relay-goroutine-raw
// and relay-epoll (bench/targets.go): pgbench through it against the
// primary, its CPU per transaction next to PgBouncer's and pgone's. A core
// whose bare relaying already costs more than PgBouncer's whole pooling
// cannot be the base of a proxy that must cost less.
//
//	relaycore -core epoll -listen 127.0.0.1:6000 -upstream 127.0.0.1:5432
package main
