package logx

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Options tune a Handler; zero fields take the defaults.
type Options struct {
	// Interval is the aggregation window per message (default 10s).
	Interval time.Duration
	// Burst is how many records of one message are logged in full per
	// Interval before the rest are counted (default 10).
	Burst int
	// MaxLine bounds the length of a line in bytes (default 2048).
	MaxLine int
}

func (o *Options) defaults() {
	if o.Interval <= 0 {
		o.Interval = 10 * time.Second
	}
	if o.Burst <= 0 {
		o.Burst = 10
	}
	if o.MaxLine <= 0 {
		o.MaxLine = 2048
	}
}

// maxKeys bounds the limiter's memory when messages are not constants.
const maxKeys = 1024

// Handler aggregates repeated records and truncates long ones (see the
// package doc) before passing them to the handler it wraps.
type Handler struct {
	inner slog.Handler
	opts  Options
	lim   *limiter
	// fixed is the cost of the attributes and groups added by WithAttrs and
	// WithGroup, already in inner.
	fixed int
}

// New wraps inner.
func New(inner slog.Handler, opts Options) *Handler {
	opts.defaults()
	return &Handler{inner: inner, opts: opts, lim: &limiter{windows: map[windowKey]*window{}}}
}

// Enabled reports what the wrapped handler reports.
func (h *Handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.inner.Enabled(ctx, level)
}

// WithAttrs truncates attrs like a record's and keeps the limiter shared.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	b := h.newBudget()
	out := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		out[i] = b.attr(a)
	}
	return &Handler{inner: h.inner.WithAttrs(out), opts: h.opts, lim: h.lim, fixed: h.fixed + b.used}
}

// WithGroup keeps the limiter shared.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{inner: h.inner.WithGroup(name), opts: h.opts, lim: h.lim, fixed: h.fixed + len(name) + 8}
}

// Handle logs r, truncated, or counts it for the interval's summary.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	r = h.truncate(r)
	if r.Level < slog.LevelInfo || h.lim.admit(h, r) {
		return h.inner.Handle(ctx, r)
	}
	return nil
}

// truncate returns r with its message and attribute values cut so that the
// line fits in MaxLine.
func (h *Handler) truncate(r slog.Record) slog.Record {
	b := h.newBudget()
	msg := b.text(r.Message, h.opts.MaxLine/4)
	out := slog.NewRecord(r.Time, r.Level, msg, r.PC)
	dropped := 0
	r.Attrs(func(a slog.Attr) bool {
		if b.left < len(a.Key)+attrOverhead+minValue {
			dropped++ // no room left even for a truncation marker
			return true
		}
		out.AddAttrs(b.attr(a))
		return true
	})
	if dropped > 0 {
		out.AddAttrs(slog.Int("attrs_dropped", dropped))
	}
	return out
}

// windowKey is what makes two records "the same line".
type windowKey struct {
	level slog.Level
	msg   string
}

// window counts one message's records in one interval.
type window struct {
	start      time.Time
	logged     int
	suppressed int
	// last is the last suppressed record and the handler it came through
	// (with that record's WithAttrs), for the summary.
	last  slog.Record
	lastH *Handler
	timer *time.Timer
}

type limiter struct {
	mu      sync.Mutex
	windows map[windowKey]*window
}

// admit reports whether r is logged now; if not, it is counted and a
// summary is scheduled for the end of its window.
func (l *limiter) admit(h *Handler, r slog.Record) bool {
	now := time.Now()
	k := windowKey{r.Level, r.Message}
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.windows[k]
	if w == nil || now.Sub(w.start) >= h.opts.Interval {
		if len(l.windows) >= maxKeys {
			l.sweepLocked(now, h.opts.Interval)
			if len(l.windows) >= maxKeys {
				return true // too many distinct messages to track: never lose one
			}
		}
		w = &window{start: now}
		l.windows[k] = w
	}
	if w.logged < h.opts.Burst {
		w.logged++
		return true
	}
	w.suppressed++
	w.last, w.lastH = r.Clone(), h
	if w.timer == nil {
		w.timer = time.AfterFunc(w.start.Add(h.opts.Interval).Sub(now), func() { l.flush(k, w) })
	}
	return false
}

// flush writes the summary of a window that suppressed records. A newer
// window of the same message may have replaced it; its count is still owed.
func (l *limiter) flush(k windowKey, w *window) {
	l.mu.Lock()
	if l.windows[k] == w {
		delete(l.windows, k)
	}
	n, last, h := w.suppressed, w.last, w.lastH
	l.mu.Unlock()
	sum := slog.NewRecord(time.Now(), last.Level, last.Message, last.PC)
	last.Attrs(func(a slog.Attr) bool {
		sum.AddAttrs(a)
		return true
	})
	sum.AddAttrs(slog.Int("repeated", n), slog.Duration("interval", h.opts.Interval))
	_ = h.inner.Handle(context.Background(), sum)
}

// sweepLocked forgets windows that ended and owe no summary.
func (l *limiter) sweepLocked(now time.Time, interval time.Duration) {
	for k, w := range l.windows {
		if w.timer == nil && now.Sub(w.start) >= interval {
			delete(l.windows, k)
		}
	}
}
