package proxy

import (
	"github.com/pgone/pgone/internal/pgmsg"
	"github.com/pgone/pgone/internal/wire"
)

// Client frames decoded once per request. Before a request goes through
// the pipeline, decodeRequest decodes each of its frames into a frameView;
// the stages (split, plan, outcomes, render, statement outcomes, shapes)
// read the views instead of decoding the frames again, and share one copy
// of each text. A text or name the client sent recently (pgbench sends the
// same few every request) is the session's earlier copy (textMemo), so a
// request of known texts copies nothing.

// frameView is what pgone reads of one client frame. Texts and names are
// strings the session may keep; rest aliases the request's buffer and is
// valid only until the next request.
type frameView struct {
	typ  byte
	ok   bool   // it decoded; Query and messages without a body always do
	kind byte   // Describe, Close: pgmsg.TargetStatement or TargetPortal
	name string // Parse, Bind: the statement; Describe, Close: the target
	text string // Query: its text (up to a NUL); Parse: its query
	rest []byte // Parse: parameter types, as in the frame
	// Bind: where the statement name starts and ends in the body.
	portalEnd, stmtEnd int
}

// decodeRequest decodes req's frames into req.views.
func (ss *session) decodeRequest(req *request) {
	req.views = req.views[:0]
	for i := range req.frames {
		req.views = append(req.views, ss.plan.decodeFrame(req.frame(i)))
	}
}

// decodeFrame decodes one client frame. A frame that does not decode
// keeps ok false, as the decoders of frames.go answer.
func (p *plan) decodeFrame(frame []byte) frameView {
	v := frameView{typ: frame[0], ok: true}
	body := wire.Body(frame)
	switch v.typ {
	case pgmsg.Query:
		if text, _, ok := pgmsg.CString(body, 0); ok {
			v.text = p.texts.intern(text, maxMemoText)
		}
	case pgmsg.Parse:
		var m pgmsg.ParseMsg
		if v.ok = m.Decode(body) == nil; v.ok {
			v.name, v.text, v.rest = p.names.intern(m.Name, maxMemoName), p.texts.intern(m.Query, maxMemoText), m.ParamTypes
		}
	case pgmsg.Bind:
		var m pgmsg.BindMsg
		if v.ok = m.Decode(body) == nil; v.ok {
			v.name, v.portalEnd, v.stmtEnd = p.names.intern(m.Statement, maxMemoName), m.PortalEnd, m.StatementEnd
		}
	case pgmsg.Describe, pgmsg.Close:
		var m pgmsg.TargetMsg
		if v.ok = m.Decode(body) == nil; v.ok {
			v.kind, v.name = m.Kind, p.names.intern(m.Name, maxMemoName)
		}
	}
	return v
}

// parsedText is a Parse of the request: statement name and text, or, when
// unknown is set, a Parse whose text was not read (a Bind of it is taken
// as unknown: see trackSessionLocked).
type parsedText struct {
	name, text string
	unknown    bool
}

// textMemo holds the last few texts (or names) of one session, with the
// lexical answers on each once asked: a text sent again reuses the copy
// and the answers. It is the session's own: no text passes between
// clients. Only short texts are kept, so an idle session holds little.
type textMemo struct {
	entries [memoEntries]memoText
	next    int // where the next text goes, round robin
}

type memoText struct {
	text    string
	lx      lexed
	lexDone bool
}

// memoEntries is how many texts a textMemo keeps; maxMemoText and
// maxMemoName how long they may be.
const (
	memoEntries = 4
	maxMemoText = 512
	maxMemoName = 64
)

// intern returns b as a string: the memo's copy if it holds b, else a new
// copy, which it keeps if not longer than limit.
func (m *textMemo) intern(b []byte, limit int) string {
	if len(b) == 0 {
		return ""
	}
	for i := range m.entries {
		if e := &m.entries[i]; e.text == string(b) {
			return e.text
		}
	}
	s := string(b)
	if len(s) <= limit {
		m.entries[m.next] = memoText{text: s}
		m.next = (m.next + 1) % memoEntries
	}
	return s
}

// lex returns lexText(text) from the memo; ok is false when the memo does
// not hold text.
func (m *textMemo) lex(text string) (lx lexed, ok bool) {
	if text == "" {
		return lexed{}, false
	}
	for i := range m.entries {
		if e := &m.entries[i]; e.text == text {
			if !e.lexDone {
				e.lx, e.lexDone = lexText(text), true
			}
			return e.lx, true
		}
	}
	return lexed{}, false
}
