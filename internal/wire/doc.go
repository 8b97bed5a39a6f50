// Package wire frames PostgreSQL v3 protocol messages on a buffered stream
// without decoding them, so the relay can forward bytes and decode only the
// few message types it must inspect (with pgproto3).
//
// Buffer rule: a frame returned by Reader.Next is valid only until the next
// call on that Reader. Forward it at once or copy it. Over a LentBuffer
// (client connections) this matters more: its memory goes back to a shared
// BufferPool while the client is idle, so a frame kept past the next call
// may show another client's bytes.
package wire
