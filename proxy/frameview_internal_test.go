package proxy

import (
	"strings"
	"testing"
	"unsafe"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestFrameViewTextsOutliveRequestBuffer: the texts and names a frameView
// gives are the session's own copies, never views of the request buffer
// that the next request overwrites (a kept statement would change under
// the client, or show another request's text); a text sent again is the
// earlier copy (no copy per request), and a long one is copied each time,
// not kept by the memo.
func TestFrameViewTextsOutliveRequestBuffer(t *testing.T) {
	var p plan
	long := "SELECT " + strings.Repeat("1", maxMemoText)
	for _, query := range []string{"SELECT $1::int", long} {
		frame, err := (&pgproto3.Parse{Name: "s1", Query: query, ParameterOIDs: []uint32{23}}).Encode(nil)
		if err != nil {
			t.Fatal(err)
		}
		first := p.decodeFrame(frame)
		again := p.decodeFrame(frame)
		for i := range frame[5:] {
			frame[5+i] = 'x' // the buffer's next request
		}
		for _, v := range []frameView{first, again} {
			if !v.ok || v.name != "s1" || v.text != query {
				t.Fatalf("after the buffer was reused: name %q text %.20q..., want s1 %.20q...", v.name, v.text, query)
			}
		}
		same := unsafe.StringData(first.text) == unsafe.StringData(again.text)
		if kept := len(query) <= maxMemoText; same != kept {
			t.Errorf("text of %d bytes decoded twice: one copy = %v, want %v", len(query), same, kept)
		}
	}
}
