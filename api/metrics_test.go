package api

import (
	"strings"
	"testing"
	"time"
)

func TestMetricsPollerState(t *testing.T) {
	last := time.Date(2026, 11, 30, 11, 0, 0, 0, time.UTC)
	e := newTestEnv(t, func(c *Config) {
		c.PollerStatus = func() PollerStatus { return PollerStatus{Connected: true, LastSuccess: last} }
	})
	body := e.do(anonymous, request{method: "GET", path: "/metrics"}).Body.String()
	for _, want := range []string{"tlsrpt_imap_connected 1", "tlsrpt_imap_last_success_timestamp_seconds 1.7960364e+09",
		"tlsrpt_metrics_store_error 0", "tlsrpt_quarantined_messages 0"} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// Without a poller the IMAP series are absent rather than a false 0.
	e = newTestEnv(t, nil)
	if body := e.do(anonymous, request{method: "GET", path: "/metrics"}).Body.String(); strings.Contains(body, "tlsrpt_imap_connected") {
		t.Errorf("metrics without a poller show tlsrpt_imap_connected")
	}
}
