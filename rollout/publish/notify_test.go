package publish

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestNotifierErrors: a failing webhook is an error the watch records and
// retries.
func TestNotifierErrors(t *testing.T) {
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "gone", http.StatusGone)
	}))
	defer hook.Close()
	n := &Notifier{WebhookURL: hook.URL}
	if err := n.Notify(context.Background(), Alert{Domain: "example.com", Message: "m"}); err == nil || !strings.Contains(err.Error(), "410") {
		t.Errorf("Notify to a 410 webhook = %v, want an error naming the status", err)
	}
	if (*Notifier)(nil).Configured() || (&Notifier{}).Configured() {
		t.Error("an empty notifier says it is configured")
	}
	bad := &Notifier{SMTP: &SMTPConfig{Addr: "127.0.0.1:1", From: "a@example.net", To: []string{"b@example.com"}}}
	if err := bad.Notify(context.Background(), Alert{Domain: "example.com"}); err == nil {
		t.Error("Notify through a closed SMTP port = nil, want an error")
	}
}
