package logx

import (
	"fmt"
	"log/slog"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// lineOverhead is what a line costs besides the message and attributes:
// time, level and the keys around them in text or JSON, plus room for a
// summary's "repeated" and "interval" and for "attrs_dropped".
const lineOverhead = 200

// attrOverhead is what one attribute costs besides its key and value
// (separators and quotes).
const attrOverhead = 6

// minValue is room for a truncation marker: an attribute that cannot get
// that much is dropped and counted instead.
const minValue = 32

// budget hands out the bytes left for one line.
type budget struct {
	left     int
	maxValue int
	used     int
}

func (h *Handler) newBudget() *budget {
	return &budget{
		left:     h.opts.MaxLine - lineOverhead - h.fixed,
		maxValue: h.opts.MaxLine / 4,
	}
}

// attr returns a with its value truncated to what is left of the budget
// (and at most maxValue), and charges it.
func (b *budget) attr(a slog.Attr) slog.Attr {
	b.charge(len(a.Key) + attrOverhead)
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindGroup:
		group := v.Group()
		out := make([]slog.Attr, len(group))
		for i, g := range group {
			out[i] = b.attr(g)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(out...)}
	case slog.KindString:
		return b.textAttr(a.Key, v, v.String(), b.maxValue)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return b.textAttr(a.Key, v, x.Error(), b.maxValue)
		case fmt.Stringer:
			return b.textAttr(a.Key, v, x.String(), b.maxValue)
		case []byte:
			return b.textAttr(a.Key, v, string(x), b.maxValue)
		default:
			// Slices, maps, structs: kept as they are when their text is
			// short, else replaced by their truncated text. JSON may
			// render them twice as long as fmt: charged twice.
			t := fmt.Sprint(x)
			out := b.textAttr(a.Key, v, t, b.maxValue/2)
			if out.Value.Kind() == slog.KindAny {
				b.charge(escapedLen(t, b.maxValue))
			}
			return out
		}
	}
	// Numbers, times, durations and the like are short.
	b.charge(32)
	return slog.Attr{Key: a.Key, Value: v}
}

// textAttr keeps v when s, its text, fits in limit, else a truncated string.
func (b *budget) textAttr(key string, v slog.Value, s string, limit int) slog.Attr {
	t := b.text(s, limit)
	if len(t) == len(s) {
		return slog.Attr{Key: key, Value: v}
	}
	return slog.String(key, t)
}

// text returns s cut to at most limit (and what is left) bytes as the
// handlers escape it, with a marker saying how much was cut, and charges it.
func (b *budget) text(s string, limit int) string {
	limit = min(limit, max(b.left, 0))
	if c := escapedLen(s, limit+1); c <= limit {
		b.charge(c)
		return s
	}
	marker := func(cut int) string { return "...[truncated " + strconv.Itoa(cut) + " bytes]" }
	room := max(limit-len(marker(len(s))), 0)
	n := prefixFitting(s, room)
	out := s[:n] + marker(len(s)-n)
	b.charge(escapedLen(s[:n], room) + len(marker(len(s)-n)))
	return out
}

func (b *budget) charge(n int) {
	b.left -= n
	b.used += n
}

// escapedLen is the length of s as text or JSON output escapes it, counted
// up to stop (a value over stop returns more than stop).
func escapedLen(s string, stop int) int {
	n := 0
	for _, r := range s {
		n += runeCost(r)
		if n > stop {
			return n
		}
	}
	return n
}

// prefixFitting is the longest prefix of s, cut between runes, whose
// escaped length is at most room.
func prefixFitting(s string, room int) int {
	n := 0
	for i, r := range s {
		n += runeCost(r)
		if n > room {
			return i
		}
	}
	return len(s)
}

// runeCost is the most bytes a rune takes in TextHandler (strconv.Quote
// style) or JSONHandler output: control and invalid bytes become escapes.
func runeCost(r rune) int {
	switch {
	case r == utf8.RuneError:
		return 6
	case r == '"' || r == '\\':
		return 2
	case r < 0x20 || r == 0x7f:
		return 6
	case r < utf8.RuneSelf:
		return 1
	case !unicode.IsPrint(r):
		return 10
	}
	return utf8.RuneLen(r)
}
