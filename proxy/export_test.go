package proxy

import (
	"sync"

	"github.com/pgone/pgone/router"
)

// SetBeforeCancelSend makes f run when a client's cancel is about to be
// sent to its server. Call it before Serve.
func (s *Server) SetBeforeCancelSend(f func()) { s.testHooks.beforeCancelSend = f }

// SetAfterIntake makes f run in a session goroutine each time it has taken
// in a request and before it sends any of it. Call it before Serve.
func (s *Server) SetAfterIntake(f func()) { s.testHooks.afterIntake = f }

// SetAfterDrain makes f run in Shutdown once every session was asked to
// drain. Call it before Serve.
func (s *Server) SetAfterDrain(f func()) { s.testHooks.afterDrain = f }

// RouteCounter counts, by text, the router calls of the transaction-mode
// pipeline (the classifier's Decide and Classify).
type RouteCounter struct {
	mu    sync.Mutex
	calls map[string]int
}

// Calls returns how many times text was routed.
func (c *RouteCounter) Calls(text string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[text]
}

func (c *RouteCounter) add(text string) {
	c.mu.Lock()
	c.calls[text]++
	c.mu.Unlock()
}

// countingDecider is the default classifier, counting.
type countingDecider struct {
	Decider
	c *RouteCounter
}

func (d countingDecider) Decide(text string, s router.Session) router.Decision {
	d.c.add(text)
	return d.Decider.Decide(text, s)
}

func (d countingDecider) Classify(text string, inTransaction bool) Classification {
	d.c.add(text)
	return d.Decider.Classify(text, inTransaction)
}

// CountRouting makes the server count its router calls. Call it before
// Serve.
func (s *Server) CountRouting() *RouteCounter {
	c := &RouteCounter{calls: map[string]int{}}
	s.classifier = countingDecider{Decider: s.classifier.(Decider), c: c}
	return c
}

// MaxTrackedText is the longest text session mode reads to tell what a
// request may commit (lostsession.go).
const MaxTrackedText = maxTrackedText
