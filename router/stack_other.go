//go:build !unix

package router

// stackLimit is unknown off unix: the default bound applies.
func stackLimit() uint64 { return 0 }
