package api

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/rollout"
	"github.com/tlsrpt/tlsrpt/rollout/publish"
)

// smtpSink is a minimal SMTP server on loopback that keeps the messages
// it receives (no TLS, no auth: net/smtp sends no credentials then).
type smtpSink struct {
	ln   net.Listener
	mu   sync.Mutex
	msgs []string
}

func startSMTPSink(t *testing.T) *smtpSink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpSink{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	return s
}

func (s *smtpSink) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(io.LimitReader(c, 1<<20))
	say := func(l string) { io.WriteString(c, l+"\r\n") }
	say("220 sink ESMTP")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
			say("250 sink")
		case strings.HasPrefix(cmd, "DATA"):
			say("354 go on")
			var b strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				b.WriteString(l)
			}
			s.mu.Lock()
			s.msgs = append(s.msgs, b.String())
			s.mu.Unlock()
			say("250 queued")
		case strings.HasPrefix(cmd, "QUIT"):
			say("221 bye")
			return
		default:
			say("250 ok")
		}
	}
}

func (s *smtpSink) messages() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.msgs...)
}

// TestWatch: an enforcing domain whose failures rise notifies once per
// episode by webhook and email, with the link and the rollback proposal.
func TestWatch(t *testing.T) {
	var (
		mu    sync.Mutex
		hooks []map[string]any
	)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		mu.Lock()
		hooks = append(hooks, m)
		mu.Unlock()
	}))
	defer hook.Close()
	sink := startSMTPSink(t)
	f := newFlowEnv(t, true, func(c *Config) {
		c.PublicURL = "https://tlsrpt.example.net/"
		c.Promote.Notifier = &publish.Notifier{WebhookURL: hook.URL, SMTP: &publish.SMTPConfig{Addr: sink.ln.Addr().String(),
			From: "tlsrpt@example.net", To: []string{"postmaster@example.com"}}}
	})
	// Clean for 17 days, failing on the last 3: promoted live four days
	// ago, when the days before were clean, and watched now (the watch
	// counts only the days after the version went live).
	seedDomain(t, f.d, testNow, "example.com", 20, 3)
	ctx := context.Background()
	p := f.s.Promoter()
	clock := testNow.AddDate(0, 0, -4)
	p.Now = func() time.Time { return clock }
	if _, err := p.Change(ctx, publish.ChangeRequest{Domain: "example.com", Kind: rollout.KindPromote, Actor: "test",
		Override: true, Confirm: "example.com", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	if v, err := p.Reconcile(ctx, "example.com"); err != nil || v.VerifiedAt == nil {
		t.Fatalf("promotion not live: %+v %v", v, err)
	}
	clock = testNow
	res, err := p.Watch(ctx, "example.com")
	if err != nil {
		t.Fatal(err)
	}
	if res.Regression == nil || !res.Opened || !res.Notified {
		t.Fatalf("Watch = %+v, want a regression, a new episode, notified", res)
	}
	// The next poll in the same episode stays quiet.
	if res, err = p.Watch(ctx, "example.com"); err != nil || res.Regression == nil || res.Opened || res.Notified {
		t.Errorf("second Watch = %+v %v, want the regression without a new notification", res, err)
	}
	mu.Lock()
	got := hooks
	mu.Unlock()
	if len(got) != 1 {
		t.Fatalf("webhook calls = %d, want 1", len(got))
	}
	text, _ := got[0]["text"].(string)
	for _, want := range []string{"example.com", "<https://tlsrpt.example.net/domains/example.com|example.com>", "mode: testing", "tlsrpt rollback example.com"} {
		if !strings.Contains(text, want) {
			t.Errorf("webhook text lacks %q:\n%s", want, text)
		}
	}
	msgs := sink.messages()
	if len(msgs) != 1 || !strings.Contains(msgs[0], "Subject: MTA-STS regression on example.com") ||
		!strings.Contains(msgs[0], "https://tlsrpt.example.net/domains/example.com") {
		t.Errorf("emails = %q, want one with the subject and the link", msgs)
	}
	// A rollback ends the watch: the episode closes, the next regression
	// after a new promotion is a new episode.
	if _, err := p.Change(ctx, publish.ChangeRequest{Domain: "example.com", Kind: rollout.KindRollback, Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	if res, err = p.Watch(ctx, "example.com"); err != nil || res.Regression != nil {
		t.Errorf("Watch after the rollback = %+v %v, want nothing", res, err)
	}
	if closed, _ := f.d.CloseWatchEpisode(ctx, "example.com", testNow); closed {
		t.Error("the episode was still open after the rollback")
	}
}
