package main

import (
	"net"
	"strings"
	"testing"
)

// TestHealthcheck is the image's HEALTHCHECK: 0 while serve answers
// /healthz, 1 when nothing listens or the endpoint says no.
func TestHealthcheck(t *testing.T) {
	rs, err := startServe(t, "127.0.0.1:0", serveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runCmd("healthcheck", "--url", "http://"+rs.httpAddr+"/healthz"); code != 0 || out != "ok\n" {
		t.Errorf("healthcheck of a running pgone: %d %q %q, want 0 ok", code, out, errOut)
	}
	if code, _, errOut := runCmd("healthcheck", "--url", "http://"+rs.httpAddr+"/no-such-path"); code != 1 || !strings.Contains(errOut, "404") {
		t.Errorf("healthcheck of a 404: %d %q, want 1 naming the status", code, errOut)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	if code, _, errOut := runCmd("healthcheck", "--url", "http://"+closed+"/healthz", "--timeout", "2s"); code != 1 || errOut == "" {
		t.Errorf("healthcheck of a closed port: %d %q, want 1 and an error", code, errOut)
	}
	if code, _, _ := runCmd("healthcheck", "--bogus"); code != 2 {
		t.Errorf("healthcheck --bogus: %d, want 2", code)
	}
}
