package ingest

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParseIMAPURL(t *testing.T) {
	tests := []struct {
		in   string
		want IMAPURL
	}{
		{"imaps://tls@imap.example.com/INBOX", IMAPURL{SecurityTLS, "imap.example.com:993", "tls", "", "INBOX"}},
		{"imap://tls@imap.example.com:1143", IMAPURL{SecuritySTARTTLS, "imap.example.com:1143", "tls", "", "INBOX"}},
		{"imaps://rua@example.com@imap.gmail.com/Reports/TLS", IMAPURL{SecurityTLS, "imap.gmail.com:993", "rua@example.com", "", "Reports/TLS"}},
		{"imaps://rua%40example.com:s3cret@[::1]:9993/", IMAPURL{SecurityTLS, "[::1]:9993", "rua@example.com", "s3cret", "INBOX"}},
		{"IMAPS://u@h", IMAPURL{SecurityTLS, "h:993", "u", "", "INBOX"}},
	}
	for _, tt := range tests {
		got, err := ParseIMAPURL(tt.in)
		if err != nil {
			t.Errorf("ParseIMAPURL(%q) error %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseIMAPURL(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
	for _, bad := range []string{"", "https://u@h/", "imaps:u@h", "imaps:///INBOX", "imaps://u@h:0/", "imaps://u@h:70000/", "imaps://u@h/IN*", "imaps://u@h/?x=1", "imaps://u@h/#f"} {
		if got, err := ParseIMAPURL(bad); err == nil {
			t.Errorf("ParseIMAPURL(%q) = %+v, want an error", bad, got)
		}
	}
}

func FuzzParseIMAPURL(f *testing.F) {
	for _, s := range []string{"imaps://u@h/INBOX", "imap://a%40b@[::1]:143/x/y", "imaps://u:p@h:993", "imap://@/", "imaps://u@h/%2A"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseIMAPURL(s)
		if err != nil {
			return
		}
		if u.Addr == "" || u.Mailbox == "" || strings.ContainsAny(u.Mailbox, "*%\r\n") {
			t.Fatalf("ParseIMAPURL(%q) = %+v: accepted an unusable URL", s, u)
		}
		if u.Security != SecurityTLS && u.Security != SecuritySTARTTLS {
			t.Fatalf("ParseIMAPURL(%q) security %q", s, u.Security)
		}
	})
}

func TestIMAPConfigFromEnv(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := IMAPConfigFromEnv(envOf(map[string]string{
		EnvIMAPURL:          "imap://rua@127.0.0.1:1143/Reports",
		EnvIMAPPasswordFile: pwFile,
		EnvIMAPInsecureLoop: "1",
		EnvIMAPPollInterval: "30s",
		EnvIMAPMarkSeenOnly: "true",
	}), "")
	if err != nil {
		t.Fatalf("IMAPConfigFromEnv: %v", err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if c.Password != "from-file" || c.Security != SecurityPlaintext || c.Mailbox != "Reports" ||
		c.PollInterval != 30*time.Second || !c.MarkSeenOnly || c.ProcessedFolder != DefaultProcessedFolder || c.Auth != AuthLogin {
		t.Errorf("IMAPConfigFromEnv = %+v", c)
	}
	if got, want := c.MailboxKey(), "imap://rua@127.0.0.1:1143/Reports"; got != want {
		t.Errorf("MailboxKey() = %q, want %q", got, want)
	}

	// The flag wins over the environment.
	c, err = IMAPConfigFromEnv(envOf(map[string]string{EnvIMAPURL: "imaps://a@one", EnvIMAPPassword: "x"}), "imaps://b@two")
	if err != nil || c.Addr != "two:993" || c.Username != "b" {
		t.Errorf("IMAPConfigFromEnv with flag = %+v, %v", c, err)
	}
	if _, err := IMAPConfigFromEnv(envOf(nil), ""); !errors.Is(err, ErrNoIMAP) {
		t.Errorf("IMAPConfigFromEnv(empty) error = %v, want ErrNoIMAP", err)
	}
	// A refresh token alone selects XOAUTH2.
	c, err = IMAPConfigFromEnv(envOf(map[string]string{EnvIMAPURL: "imaps://a@imap.gmail.com", EnvIMAPOAuthRefresh: "r",
		EnvIMAPOAuthClientID: "id", EnvIMAPOAuthProvider: "Google"}), "")
	if err != nil || c.Auth != AuthXOAUTH2 || c.OAuthProvider != ProviderGoogle {
		t.Errorf("IMAPConfigFromEnv(oauth) = %+v, %v", c, err)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate(oauth) = %v", err)
	}
}

// TestIMAPConfigErrors checks that every mistake gives one line naming the
// setting at fault.
func TestIMAPConfigErrors(t *testing.T) {
	base := map[string]string{EnvIMAPURL: "imaps://rua@imap.example.com/INBOX", EnvIMAPPassword: "pw"}
	tests := []struct {
		set  map[string]string
		want string // the setting named
	}{
		{map[string]string{EnvIMAPURL: "http://x"}, EnvIMAPURL},
		{map[string]string{EnvIMAPURL: "imaps://imap.example.com/"}, EnvIMAPURL},
		{map[string]string{EnvIMAPPassword: ""}, EnvIMAPPassword},
		{map[string]string{EnvIMAPPasswordFile: "/nonexistent/pw"}, EnvIMAPPasswordFile},
		{map[string]string{EnvIMAPCAFile: "/nonexistent/ca.pem"}, EnvIMAPCAFile},
		{map[string]string{EnvIMAPInsecureLoop: "maybe"}, EnvIMAPInsecureLoop},
		{map[string]string{EnvIMAPURL: "imap://rua@imap.example.com/", EnvIMAPInsecureLoop: "1"}, EnvIMAPInsecureLoop},
		{map[string]string{EnvIMAPPollInterval: "often"}, EnvIMAPPollInterval},
		{map[string]string{EnvIMAPPollInterval: "10ms"}, EnvIMAPPollInterval},
		{map[string]string{EnvIMAPBatchSize: "-3"}, EnvIMAPBatchSize},
		{map[string]string{EnvIMAPProcessed: "INBOX"}, EnvIMAPProcessed},
		{map[string]string{EnvIMAPProcessed: "a//b"}, EnvIMAPProcessed},
		{map[string]string{EnvIMAPQuarantine: DefaultProcessedFolder}, EnvIMAPQuarantine},
		{map[string]string{EnvIMAPAuth: "kerberos"}, EnvIMAPAuth},
		{map[string]string{EnvIMAPAuth: "xoauth2"}, EnvIMAPOAuthRefresh},
		{map[string]string{EnvIMAPOAuthRefresh: "r"}, EnvIMAPOAuthClientID},
		{map[string]string{EnvIMAPOAuthRefresh: "r", EnvIMAPOAuthClientID: "c"}, EnvIMAPOAuthProvider},
		{map[string]string{EnvIMAPOAuthRefresh: "r", EnvIMAPOAuthClientID: "c", EnvIMAPOAuthProvider: "yahoo"}, EnvIMAPOAuthProvider},
		{map[string]string{EnvIMAPOAuthRefresh: "r", EnvIMAPOAuthClientID: "c", EnvIMAPOAuthTokenURL: "http://auth.example/token"}, EnvIMAPOAuthTokenURL},
		{map[string]string{EnvIMAPOAuthRefresh: "r", EnvIMAPTokenCommand: "echo t"}, EnvIMAPTokenCommand},
	}
	for _, tt := range tests {
		env := map[string]string{}
		for k, v := range base {
			env[k] = v
		}
		for k, v := range tt.set {
			env[k] = v
		}
		c, err := IMAPConfigFromEnv(envOf(env), "")
		if err == nil {
			err = c.Validate()
		}
		if err == nil {
			t.Errorf("config %v: no error, want one naming %s", tt.set, tt.want)
			continue
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, tt.want+":") || strings.Contains(msg, "\n") {
			t.Errorf("config %v: error %q, want one line starting with %s:", tt.set, msg, tt.want)
		}
	}
}

func TestTokenCommand(t *testing.T) {
	c := IMAPConfig{Auth: AuthXOAUTH2, TokenCommand: "printf 'tok-123\\nignored\\n'"}
	got, err := newTokenFunc(&c)(t.Context())
	if err != nil || got != "tok-123" {
		t.Errorf("token command = %q, %v; want tok-123", got, err)
	}
	c.TokenCommand = "echo oops >&2; exit 3"
	if _, err := newTokenFunc(&c)(t.Context()); err == nil || !strings.Contains(err.Error(), "oops") {
		t.Errorf("failing token command error = %v, want its stderr", err)
	}
	c.TokenCommand = "true"
	if _, err := newTokenFunc(&c)(t.Context()); err == nil {
		t.Errorf("silent token command: no error")
	}
}

func TestBackoff(t *testing.T) {
	for n := 1; n < 40; n++ {
		d := backoff(n)
		ceil := min(minBackoff<<min(n-1, 19), maxBackoff)
		if d < ceil/2 || d > ceil {
			t.Errorf("backoff(%d) = %s, want within [%s, %s]", n, d, ceil/2, ceil)
		}
	}
}

// TestRefreshToken exchanges a refresh token at a loopback token endpoint
// and reuses the access token until it expires.
func TestRefreshToken(t *testing.T) {
	var calls int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		if err := r.ParseForm(); err != nil || r.Form.Get("grant_type") != "refresh_token" || r.Form.Get("refresh_token") != "refresh-1" {
			http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":"access-%d","token_type":"Bearer","expires_in":3600}`, calls)
	}))
	defer srv.Close()
	c := IMAPConfig{Auth: AuthXOAUTH2, OAuthTokenURL: srv.URL, OAuthClientID: "id", OAuthClientSecret: "secret", OAuthRefreshToken: "refresh-1"}
	tok := newTokenFunc(&c)
	for range 3 {
		got, err := tok(t.Context())
		if err != nil || got != "access-1" {
			t.Fatalf("token = %q, %v; want access-1", got, err)
		}
	}
	if calls != 1 {
		t.Errorf("token endpoint called %d times, want 1 (the token is reused)", calls)
	}
	c.OAuthRefreshToken = "revoked"
	if _, err := newTokenFunc(&c)(t.Context()); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Errorf("revoked refresh token: error %v, want invalid_grant", err)
	}
}

func TestXOAUTH2Client(t *testing.T) {
	mech, ir, err := newSASLClient(AuthXOAUTH2, "rua@example.com", "tok").Start()
	if err != nil || mech != "XOAUTH2" || string(ir) != "user=rua@example.com\x01auth=Bearer tok\x01\x01" {
		t.Errorf("XOAUTH2 Start() = %q, %q, %v", mech, ir, err)
	}
	mech, ir, err = newSASLClient(AuthOAuthBearer, "rua@example.com", "tok").Start()
	if err != nil || mech != "OAUTHBEARER" || !strings.Contains(string(ir), "auth=Bearer tok") {
		t.Errorf("OAUTHBEARER Start() = %q, %q, %v", mech, ir, err)
	}
}
