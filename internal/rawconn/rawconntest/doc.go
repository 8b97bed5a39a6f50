// Package rawconntest gives tests a loopback TCP connection whose one end
// is wrapped by rawconn, for the tests of rawconn and of what reads through
// it (wire.LentBuffer).
package rawconntest
