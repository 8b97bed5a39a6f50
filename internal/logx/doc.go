// Package logx keeps pgone's log readable under a flood: a slog.Handler
// wrapper that aggregates repeated lines and bounds the length of every line.
//
// A hostile or broken client can make pgone log once per connection or per
// message (bogus cancel requests, login timeouts, a 1 MB admin command). The
// Handler therefore:
//
//   - logs the first Burst records of each (level, message) per Interval in
//     full, counts the rest, and logs one summary per Interval for them: the
//     last suppressed record with "repeated" (how many were left out) and
//     "interval". Debug records are never aggregated (debugging wants them
//     all); a message always keeps its own count, so one flood cannot hide
//     a different message.
//   - truncates the message and attribute values (strings, errors, Stringers)
//     so that the whole line stays under MaxLine bytes in text or JSON, with
//     a marker naming how much was cut.
//
// Concurrency: a Handler and those derived from it by WithAttrs/WithGroup
// share one limiter, safe for concurrent use. A summary is written from a
// timer (time.AfterFunc) at the end of the interval in which lines were
// suppressed; no goroutine outlives it.
package logx
