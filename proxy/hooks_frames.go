package proxy

import (
	"encoding/binary"
	"iter"
	"sync"

	"github.com/pgone/pgone/internal/wire"
)

// What AfterReply learns of a request's replies besides counts: the frames
// themselves (the cache's entry is those bytes) and how the request ended.

// Outcome is how a request's replies ended, for the hooks.
type Outcome uint8

const (
	// OutcomeOK: every statement the request ran succeeded.
	OutcomeOK Outcome = iota
	// OutcomeError: an ErrorResponse reached the client.
	OutcomeError
)

func (o Outcome) String() string {
	if o == OutcomeError {
		return "error"
	}
	return "ok"
}

// maxHookFrames bounds the reply bytes kept for AfterReply per request; a
// longer reply is given as incomplete (ReplyFrames.Complete), its counts
// still right. It is above any sensible cache entry.
const maxHookFrames = 4 << 20

// ReplyFrames is a read-only view of the frames a request's replies
// forwarded to the client, in order and byte for byte as the client got
// them (message type, length, body): for a request of one statement, that
// statement's replies. It is valid only during the AfterReply call that
// received it; copy what is kept (AppendTo).
type ReplyFrames struct {
	b        []byte
	complete bool
}

// Complete reports whether the view holds every forwarded frame: false
// when the reply passed maxHookFrames (or no hook followed it).
func (f ReplyFrames) Complete() bool { return f.complete }

// Len is the view's size in bytes.
func (f ReplyFrames) Len() int { return len(f.b) }

// AppendTo appends a copy of the frames to dst.
func (f ReplyFrames) AppendTo(dst []byte) []byte { return append(dst, f.b...) }

// All yields each frame's message type and body. The bodies are the
// view's memory: read only, valid during the call.
func (f ReplyFrames) All() iter.Seq2[byte, []byte] {
	return func(yield func(byte, []byte) bool) {
		for b := f.b; len(b) >= wire.HeaderLen; {
			n := 1 + int(binary.BigEndian.Uint32(b[1:wire.HeaderLen]))
			if n < wire.HeaderLen || n > len(b) {
				return
			}
			if !yield(b[0], b[wire.HeaderLen:n]) {
				return
			}
			b = b[n:]
		}
	}
}

// framesPool recycles the buffers requestView keeps frames in: with hooks
// set, a request copies its replies once, into a reused buffer.
var framesPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func takeFrames() *[]byte { return framesPool.Get().(*[]byte) }

// putFrames gives a buffer back, unless it grew too large to keep.
func putFrames(b *[]byte) {
	if b == nil || cap(*b) > maxHookFrames {
		return
	}
	*b = (*b)[:0]
	framesPool.Put(b)
}

// keepFrame appends a forwarded frame to the view's copy; past
// maxHookFrames the copy is dropped and the view incomplete.
func (v *requestView) keepFrame(frame []byte) {
	if v.frames == nil {
		return
	}
	if len(*v.frames)+len(frame) > maxHookFrames {
		putFrames(v.frames)
		v.frames = nil
		return
	}
	*v.frames = append(*v.frames, frame...)
}

// replyFrames is the view AfterReply gets.
func (v *requestView) replyFrames() ReplyFrames {
	if v.frames == nil {
		return ReplyFrames{}
	}
	return ReplyFrames{b: *v.frames, complete: true}
}
