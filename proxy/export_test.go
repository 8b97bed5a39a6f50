package proxy

// SetBeforeCancelSend makes f run when a client's cancel is about to be
// sent to its server. Call it before Serve.
func (s *Server) SetBeforeCancelSend(f func()) { s.testHooks.beforeCancelSend = f }
