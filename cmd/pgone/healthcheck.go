package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"
)

// cmdHealthcheck GETs pgone's own health endpoint and exits 0 on 200, 1
// otherwise. It exists for the container image's HEALTHCHECK: the runtime
// image has no shell, curl or wget, only the pgone binary.
func cmdHealthcheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "http://127.0.0.1:9930/healthz", "health URL to GET (http.listen of the running pgone, /healthz or /readyz)")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	client := &http.Client{Timeout: *timeout}
	resp, err := client.Get(*url)
	if err != nil {
		fmt.Fprintln(stderr, "pgone healthcheck:", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "pgone healthcheck: %s: %s %s", *url, resp.Status, body)
		return 1
	}
	fmt.Fprintf(stdout, "%s", body)
	return 0
}
