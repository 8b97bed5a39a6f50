package proxy

// Taking a request in, against shutdown (transaction mode). Shutdown's
// drain (drainNow) closes a session it finds idle; the session goroutine
// takes a client's request in between reads. Were the two decided apart,
// drain could find a session idle while its goroutine already held a
// BEGIN, and the client would see BEGIN succeed and its next statement
// fail with 57P01. So both are decided under ss.mu on one flag: the
// goroutine marks a request taken in (intake) on its first frame, unless
// drain came first and the session is idle, in which case the request is
// refused with 57P01 before any of it reaches a server; drain counts a
// session with a request taken in as active and leaves it to close itself
// once idle, as PgBouncer lets a transaction a client began finish within
// the grace period.

// takeIn marks a request taken in on its first frame. It reports false,
// after closing the session with 57P01, when shutdown has begun and the
// session is idle: the request would begin new work.
func (ss *session) takeIn() bool {
	ss.mu.Lock()
	refuse := ss.draining && ss.stateLocked() == stateIdle
	ss.intake = !refuse
	ss.mu.Unlock()
	if refuse {
		ss.log.Info("refusing a new request for shutdown")
		ss.terminate(shutdownError())
	}
	return !refuse
}

// endIntake ends the intake of a request pgone answered without sending
// it (a request sent hands over to its replies, which close the session at
// its ReadyForQuery if shutdown asks: see handleReplyLocked). It reports
// false, after closing the session with 57P01, when shutdown has begun
// and the session is idle.
func (ss *session) endIntake() bool {
	ss.mu.Lock()
	answered := ss.intake
	ss.intake = false
	closeNow := answered && ss.draining && ss.stateLocked() == stateIdle
	ss.mu.Unlock()
	if closeNow {
		ss.log.Info("closing client for shutdown after its request")
		ss.terminate(shutdownError())
	}
	return !closeNow
}
