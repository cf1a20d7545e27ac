package publish

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/smtp"
	"strings"
	"time"

	"github.com/tlsrpt/tlsrpt/rollout"
)

// Notifier tells people about a regression of an enforcing domain: by a
// webhook taking Slack-compatible JSON ({"text": ...}; Slack, Mattermost,
// Rocket.Chat and most chat tools accept it) and by email, each where
// configured.
type Notifier struct {
	// WebhookURL receives a POST with the JSON message.
	WebhookURL string
	// SMTP sends the email; nil means no email.
	SMTP *SMTPConfig
	// Client is the webhook's HTTP client; nil means one with a 15 s
	// timeout.
	Client *http.Client
}

// SMTPConfig is the mail server notifications go through. The connection
// uses STARTTLS when the server offers it; credentials are only sent over
// TLS or to localhost (net/smtp's rule).
type SMTPConfig struct {
	// Addr is host:port (587 for submission).
	Addr     string
	From     string
	To       []string
	Username string
	Password string
}

// Alert is one regression, or certificate alert, to tell about.
type Alert struct {
	Domain string `json:"domain"`
	// Subject is the first line and the email's subject; "" means the
	// regression's.
	Subject string `json:"subject,omitempty"`
	// Message says what rose, with the numbers.
	Message string `json:"message"`
	// Link is the domain page.
	Link string `json:"link"`
	// Rollback is the proposed rollback policy and record, when there is
	// one.
	Rollback *rollout.Generated `json:"rollback,omitempty"`
	OpenedAt time.Time          `json:"opened_at"`
}

// Text is the alert as plain text, for the chat message and the email.
func (a Alert) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s\n", a.subject(), a.Message)
	if a.Link != "" {
		fmt.Fprintf(&b, "Domain page: %s\n", a.Link)
	}
	if a.Rollback != nil {
		fmt.Fprintf(&b, "\nProposed rollback (mode testing, new id %s): run \"tlsrpt rollback %s\" or use the page.\n", a.Rollback.ID, a.Domain)
		fmt.Fprintf(&b, "Policy file:\n%s\nTXT %s \"%s\"\n", a.Rollback.Policy, a.Rollback.RecordName, a.Rollback.RecordValue)
	}
	return b.String()
}

func (a Alert) subject() string {
	if a.Subject != "" {
		return a.Subject
	}
	return "MTA-STS regression on " + a.Domain + " (enforce)"
}

// Configured reports whether any channel is set.
func (n *Notifier) Configured() bool {
	return n != nil && (n.WebhookURL != "" || n.SMTP != nil)
}

// maxWebhookAnswer bounds what is read of the webhook's answer.
const maxWebhookAnswer = 64 << 10

// Notify sends the alert on every configured channel; it returns the
// errors of those that failed, joined.
func (n *Notifier) Notify(ctx context.Context, a Alert) error {
	if !n.Configured() {
		return nil
	}
	var errs []error
	if n.WebhookURL != "" {
		if err := n.webhook(ctx, a); err != nil {
			errs = append(errs, err)
		}
	}
	if n.SMTP != nil {
		if err := n.email(ctx, a); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (n *Notifier) webhook(ctx context.Context, a Alert) error {
	// Slack's incoming webhooks read "text" (with <url|label> links);
	// the other fields are for receivers that want the data.
	text := a.Text()
	if a.Link != "" {
		text = strings.Replace(text, a.Link, "<"+a.Link+"|"+a.Domain+">", 1)
	}
	body, err := json.Marshal(struct {
		Text  string `json:"text"`
		Alert Alert  `json:"tlsrpt"`
	}{text, a})
	if err != nil {
		return fmt.Errorf("encoding the webhook message: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.WebhookURL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("building the webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	c := n.Client
	if c == nil {
		c = &http.Client{Timeout: 15 * time.Second}
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("posting the webhook: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxWebhookAnswer))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("posting the webhook: status %d", resp.StatusCode)
	}
	return nil
}

// smtpTimeout bounds a whole email delivery: net/smtp has no timeouts of
// its own, so the connection carries a deadline.
const smtpTimeout = 30 * time.Second

func (n *Notifier) email(ctx context.Context, a Alert) error {
	cfg := n.SMTP
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return fmt.Errorf("sending the email: smtp address %q: %w", cfg.Addr, err)
	}
	var msg bytes.Buffer
	fmt.Fprintf(&msg, "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\n",
		cfg.From, strings.Join(cfg.To, ", "), a.subject(), time.Now().UTC().Format(time.RFC1123Z))
	msg.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nAuto-Submitted: auto-generated\r\n\r\n")
	msg.WriteString(strings.ReplaceAll(a.Text(), "\n", "\r\n"))

	ctx, cancel := context.WithTimeout(ctx, smtpTimeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("sending the email: connecting to %s: %w", cfg.Addr, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if err := sendMail(conn, host, cfg, msg.Bytes()); err != nil {
		return fmt.Errorf("sending the email through %s: %w", cfg.Addr, err)
	}
	return nil
}

// sendMail speaks SMTP on conn: STARTTLS when offered, PLAIN auth when
// configured (net/smtp sends it only over TLS or to localhost).
func sendMail(conn net.Conn, host string, cfg *SMTPConfig, msg []byte) error {
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return err
	}
	defer c.Close()
	if ok, _ := c.Extension("STARTTLS"); ok {
		if err := c.StartTLS(&tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}); err != nil {
			return err
		}
	}
	if cfg.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", cfg.Username, cfg.Password, host)); err != nil {
			return err
		}
	}
	if err := c.Mail(cfg.From); err != nil {
		return err
	}
	for _, to := range cfg.To {
		if err := c.Rcpt(to); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}
