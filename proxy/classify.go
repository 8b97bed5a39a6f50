package proxy

import (
	"log/slog"

	"github.com/pgone/pgone/router"
)

// Classifier tells the session what a statement does to session state. The
// router implements it through routerClassifier; tests may substitute one.
type Classifier interface {
	Classify(text string, inTransaction bool) Classification
}

// Classification is what transaction pooling needs to know of a statement.
type Classification struct {
	// Pins names the causes of state a pool cannot move (LISTEN, session
	// advisory locks, temp tables, WITH HOLD cursors, SQL PREPARE...).
	Pins []string
	// ChangesSettings: SET, RESET, set_config and the like; pgone reads the
	// session settings back after the request.
	ChangesSettings bool
	// DiscardAll and DeallocateAll drop the server's prepared statements.
	DiscardAll    bool
	DeallocateAll bool
	// DDL may change what functions do: their volatility is read again.
	DDL bool
}

// SetClassifier replaces the statement classifier; call it before Serve.
func (s *Server) SetClassifier(c Classifier) { s.classifier = c }

// routerClassifier adapts the router (decisions cached by text) to
// Classifier and Decider.
type routerClassifier struct {
	r   *router.Router
	log *slog.Logger
}

func (c routerClassifier) Classify(text string, inTransaction bool) Classification {
	if router.NoSessionEffects(text) {
		// Plain DML and queries, often with inlined literals that make
		// every text new to the decision cache: no parse needed.
		return Classification{}
	}
	return classificationOf(c.Decide(text, router.Session{InTransaction: inTransaction}))
}

// Decide routes text (Decider): the request plan's one call per statement.
func (c routerClassifier) Decide(text string, s router.Session) router.Decision {
	d := c.r.Route(text, s)
	logUnparsed(c.log, d, text)
	return d
}

// classificationOf is what transaction pooling needs of a decision.
func classificationOf(d router.Decision) Classification {
	out := Classification{
		ChangesSettings: d.ChangesSettings,
		DiscardAll:      d.DiscardAll,
		DeallocateAll:   d.DeallocateAll,
		DDL:             d.Reason == router.ReasonDDL,
	}
	for _, p := range d.Pins {
		out.Pins = append(out.Pins, p.String())
	}
	return out
}

// logUnparsed notes, at debug level, a statement the router sent to the
// primary without parsing it (too long or too deep for pg_query). The text
// itself is not logged: it is over the bound by definition.
func logUnparsed(log *slog.Logger, d router.Decision, text string) {
	if log == nil || (d.Reason != router.ReasonTooLong && d.Reason != router.ReasonTooComplex) {
		return
	}
	log.Debug("statement routed to the primary unparsed", "reason", d.Reason.String(), "bytes", len(text))
}
