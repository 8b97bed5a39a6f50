package cache

import (
	"time"
	"unsafe"
)

// Entry is one cached result: the exact reply bytes PostgreSQL sent for a
// read, and the versions of what it read when the read was sent. An entry
// is immutable once stored; a hit writes Reply to the client as is.
type Entry struct {
	// Database is where the tables read live.
	Database string
	// Reply is the reply frames as the client received them, ready to
	// write: RowDescription, the DataRows, CommandComplete and, on the
	// extended path, the completes the request asked for, through the
	// final ReadyForQuery (always status I: only reads outside
	// transactions are cached). So a hit is the whole answer the proxy's
	// BeforeSend returns, written without a copy.
	Reply []byte
	// Tables are the tables read (sorted, unique) with their versions.
	Tables []TableVersion
	// Epoch is the database's epoch when the read was sent.
	Epoch uint64
	// TTL bounds the entry's life even if nothing invalidates it.
	TTL time.Duration

	all uint64 // Versions.all when the read was sent (this process only)
}

// entryOverhead approximates what an Entry costs besides its bytes: the
// struct, its slice headers and the store's node.
const entryOverhead = int(unsafe.Sizeof(Entry{})) + 64

// Size is the bytes the entry holds, as the memory store's bound counts
// them.
func (e *Entry) Size() int {
	n := entryOverhead + len(e.Reply) + len(e.Database)
	for _, t := range e.Tables {
		n += int(unsafe.Sizeof(t)) + len(t.Table)
	}
	return n
}

// newEntry builds the entry of reply read under tok. reply is kept, not
// copied: the caller hands it over.
func newEntry(tok *FillToken, reply []byte, ttl time.Duration) *Entry {
	return &Entry{Database: tok.db, Reply: reply, Tables: tok.tables, Epoch: tok.epoch, TTL: ttl, all: tok.all}
}
