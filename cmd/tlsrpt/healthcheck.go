package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"net"
	"net/http"
	"time"
)

func init() {
	register(command{name: "healthcheck", summary: "exit 0 when the local server answers /healthz (for container health checks)", run: runHealthcheck})
}

// runHealthcheck asks the server on TLSRPT_LISTEN for /healthz. Container
// images have no curl; this is their HEALTHCHECK.
func runHealthcheck(ctx context.Context, env *Env, args []string) int {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	listen := env.Getenv("TLSRPT_LISTEN")
	if listen == "" {
		listen = "127.0.0.1:8080"
	}
	addr := fs.String("addr", listen, "the server's listen address ($TLSRPT_LISTEN)")
	insecureTLS := fs.Bool("https", env.Getenv("TLSRPT_TLS_CERT") != "", "the server speaks HTTPS (set when TLSRPT_TLS_CERT is)")
	setUsage(fs, env, "healthcheck", "[--addr HOST:PORT] [--https]")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	host, port, err := net.SplitHostPort(*addr)
	if err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt healthcheck: --addr: %v\n", err)
		return 2
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1" // a wildcard listen address is reached on loopback
	}
	scheme := "http"
	if *insecureTLS {
		scheme = "https"
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+net.JoinHostPort(host, port)+"/healthz", nil)
	if err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt healthcheck: %v\n", err)
		return 1
	}
	client := &http.Client{Transport: healthTransport(*insecureTLS)}
	resp, err := client.Do(req)
	if err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt healthcheck: %v\n", err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(env.Stderr, "tlsrpt healthcheck: %s\n", resp.Status)
		return 1
	}
	return 0
}

// healthTransport talks to the local server. Over HTTPS the certificate
// is for the public name, not for 127.0.0.1, so it is not verified: the
// check asks only whether the process answers.
func healthTransport(https bool) http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	if https {
		t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // loopback liveness probe only
	}
	return t
}
