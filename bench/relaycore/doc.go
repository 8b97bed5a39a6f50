// Command relaycore is issue 14's micro-benchmark: how much CPU does the
// socket-serving core of a proxy cost per transaction, before any protocol
// work? It relays bytes between each client and its own upstream server
// connection, one to one, and understands nothing of what it relays, in
// one of these cores:
//
//   - goroutine: two goroutines per client (client to server, server to
//     client) over plain net.Conns: the ordinary Go proxy;
//   - goroutine-raw: the same over internal/rawconn, pgone's socket layer
//     (raw read and write system calls, the netpoller only for waiting);
//   - epoll: PgBouncer's model: -loops threads, each sleeping in its own
//     epoll_wait for all of its sockets (SO_REUSEPORT listeners, so the
//     kernel spreads the clients), level-triggered, non-blocking sockets,
//     one shared read buffer per loop; its calls go through the runtime
//     (syscall.EpollWait), so sysmon takes the loop's P away whenever it
//     sleeps and the loop must get it back when it wakes;
//   - epoll-raw: the same loop with epoll_wait, read and write made as raw
//     system calls the runtime does not see (the wait bounded, so a
//     garbage collection's stop-the-world still reaches the loop);
//   - txpool: transaction pooling on one epoll-raw loop (txpool_linux.go):
//     the least a transaction pooler does, the floor under pgone's work.
//
// The bench runs it as the targets relay-<core> (relay-epoll2 and
// relay-epoll-raw2: two loops; bench/relay.go): pgbench through it against
// the primary, its CPU per transaction next to PgBouncer's and pgone's. A
// core whose bare relaying already costs more than PgBouncer's whole
// pooling cannot be the base of a proxy that must cost less.
//
//	relaycore -core epoll-raw -listen 127.0.0.1:6000 -upstream 127.0.0.1:5432
//	relaycore -core txpool -pool 20 -listen 127.0.0.1:6000 -dsn 'host=127.0.0.1 port=5432 user=u password=p dbname=d sslmode=disable'
package main
