package proxy

import (
	"context"
	"encoding/binary"
	"time"

	"github.com/pgone/pgone/internal/pgmsg"
	"github.com/pgone/pgone/internal/wire"
)

// The pipeline runs several Hooks side by side (the result cache and the
// tuner): a hookSet calls each in the order they were added, each call
// guarded on its own, so one hook's panic neither fails the request nor
// keeps the others from their call.
//
//   - BeforeSend: the first hook that answers wins; the hooks after it
//     are not asked, and those implementing AnsweredHooks are told.
//   - AfterReply and AfterCommit: every hook, in order.
//   - requestMarker (the cache's marks): every hook that has it.
//   - CommitInfo.LSN: sampled once if any hook wants it (CommitLSNHooks),
//     given only to those that asked; the others get 0, as with one hook.

// AnsweredHooks are Hooks told of a request another hook answered in
// BeforeSend, so that it never reached a server and gets no AfterReply:
// the tuner counts cache hits here. r has no Frames; Rows and Bytes are
// the answer's, ServerTime is how long BeforeSend took.
type AnsweredHooks interface {
	Hooks
	Answered(ctx context.Context, p *PlanView, r ReplySample)
}

// hookSet is the server's hooks, fixed before Serve.
type hookSet struct {
	list     []Hooks
	wantsLSN []bool // by list index: the hook is CommitLSNHooks and wants it
	wantLSN  bool   // any of them does
	markers  []requestMarker
	// cache is the result cache's hooks among list, nil without it.
	cache *cacheHooks
}

// with returns a copy of hs (nil: none) with h added last. A second
// cacheHooks replaces the first in place: SetCache sets the cache.
func (hs *hookSet) with(h Hooks) *hookSet {
	var list []Hooks
	if hs != nil {
		list = append(list, hs.list...)
	}
	if ch, ok := h.(*cacheHooks); ok && hs != nil && hs.cache != nil {
		for i := range list {
			if list[i] == Hooks(hs.cache) {
				list[i] = ch
			}
		}
	} else {
		list = append(list, h)
	}
	out := &hookSet{list: list}
	for _, hk := range list {
		lh, ok := hk.(CommitLSNHooks)
		want := ok && lh.WantsCommitLSN()
		out.wantsLSN = append(out.wantsLSN, want)
		out.wantLSN = out.wantLSN || want
		if m, ok := hk.(requestMarker); ok {
			out.markers = append(out.markers, m)
		}
		if ch, ok := hk.(*cacheHooks); ok {
			out.cache = ch
		}
	}
	return out
}

// cacheHooks returns the result cache's hooks, nil when the cache is off.
func (hs *hookSet) cacheHooks() *cacheHooks {
	if hs == nil {
		return nil
	}
	return hs.cache
}

// hooksAnswered tells the hooks other than the one at index by that it
// answered the request.
func (ss *session) hooksAnswered(h *hookSet, p *PlanView, by int, answer []byte, took time.Duration) {
	var r ReplySample
	made := false
	for i, hk := range h.list {
		ah, ok := hk.(AnsweredHooks)
		if i == by || !ok {
			continue
		}
		if !made {
			r, made = answerSample(answer, took), true
		}
		ss.guardHook("Answered", func() { ah.Answered(ss.srv.ctx, p, r) })
	}
}

// answerSample is what an answer given in BeforeSend holds: its rows,
// bytes, outcome and last transaction status.
func answerSample(answer []byte, took time.Duration) ReplySample {
	r := ReplySample{Bytes: len(answer), ServerTime: took, TxStatus: pgmsg.TxIdle}
	for rest := answer; len(rest) >= wire.HeaderLen; {
		n := 1 + int(binary.BigEndian.Uint32(rest[1:wire.HeaderLen]))
		if n < wire.HeaderLen || n > len(rest) {
			break
		}
		switch rest[0] {
		case pgmsg.DataRow:
			r.Rows++
		case pgmsg.ErrorResponse:
			r.Outcome = OutcomeError
		case pgmsg.ReadyForQuery:
			if n > wire.HeaderLen {
				r.TxStatus = rest[wire.HeaderLen]
			}
		}
		rest = rest[n:]
	}
	return r
}

// CacheFill reports that the result cache missed this request and its
// reply fills the cache (the tuner's cache outcome); false without the
// cache.
func (v *PlanView) CacheFill() bool { return v.cache.fill }
