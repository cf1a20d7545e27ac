package ingest

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/endpoints"
)

// OAuth2 scopes that grant IMAP access. Google: the full mail scope is the
// only one IMAP accepts. Microsoft 365: IMAP.AccessAsUser.All on the
// Outlook resource, plus offline_access to keep getting refresh tokens.
const (
	ScopeGoogleIMAP    = "https://mail.google.com/"
	ScopeMicrosoftIMAP = "https://outlook.office.com/IMAP.AccessAsUser.All"
)

const (
	tokenCommandTimeout = 30 * time.Second
	maxTokenBytes       = 16 << 10
)

// tokenFunc returns a current OAuth2 access token.
type tokenFunc func(ctx context.Context) (string, error)

// newTokenFunc builds the token source of an OAuth2 configuration, or nil
// for password authentication.
func newTokenFunc(c *IMAPConfig) tokenFunc {
	switch {
	case c.Auth != AuthXOAUTH2 && c.Auth != AuthOAuthBearer:
		return nil
	case c.TokenCommand != "":
		command := c.TokenCommand
		return func(ctx context.Context) (string, error) { return runTokenCommand(ctx, command) }
	default:
		return refreshTokenFunc(c)
	}
}

// refreshTokenFunc exchanges the refresh token at the provider's token
// endpoint and reuses the access token until shortly before it expires.
func refreshTokenFunc(c *IMAPConfig) tokenFunc {
	conf := &oauth2.Config{ClientID: c.OAuthClientID, ClientSecret: c.OAuthClientSecret}
	switch c.OAuthProvider {
	case ProviderGoogle:
		conf.Endpoint = endpoints.Google
		conf.Scopes = []string{ScopeGoogleIMAP}
	case ProviderMicrosoft:
		conf.Endpoint = endpoints.AzureAD(c.OAuthTenant)
		conf.Scopes = []string{ScopeMicrosoftIMAP, "offline_access"}
	default:
		conf.Endpoint = oauth2.Endpoint{TokenURL: c.OAuthTokenURL}
	}
	var (
		mu  sync.Mutex
		tok = &oauth2.Token{RefreshToken: c.OAuthRefreshToken}
	)
	return func(ctx context.Context) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		if tok.Valid() {
			return tok.AccessToken, nil
		}
		// The context of TokenSource carries the HTTP client; the request
		// itself is bounded by ctx.
		t, err := conf.TokenSource(ctx, tok).Token()
		if err != nil {
			return "", fmt.Errorf("refreshing the oauth2 token at %s: %w", conf.Endpoint.TokenURL, err)
		}
		tok = t
		return t.AccessToken, nil
	}
}

// runTokenCommand runs the operator's command through /bin/sh and takes
// the first line of its output as the token.
func runTokenCommand(ctx context.Context, command string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, tokenCommandTimeout)
	defer cancel()
	var out, stderr limitedBuffer
	out.max, stderr.max = maxTokenBytes, 4<<10
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("running %s: %w: %s", EnvIMAPTokenCommand, err, strings.TrimSpace(stderr.String()))
	}
	if out.overflow {
		return "", fmt.Errorf("running %s: output longer than %d bytes", EnvIMAPTokenCommand, maxTokenBytes)
	}
	tok, _, _ := strings.Cut(strings.TrimSpace(out.String()), "\n")
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return "", fmt.Errorf("running %s: it printed no token", EnvIMAPTokenCommand)
	}
	return tok, nil
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	bytes.Buffer
	max      int
	overflow bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if room := b.max - b.Len(); len(p) > room {
		p = p[:max(room, 0)]
		b.overflow = true
	}
	b.Buffer.Write(p)
	return n, nil
}

// xoauth2Client is the SASL XOAUTH2 mechanism of Google and Microsoft:
// "user=U^Aauth=Bearer T^A^A". go-sasl has no client for it.
type xoauth2Client struct {
	username, token string
}

func (a *xoauth2Client) Start() (string, []byte, error) {
	return "XOAUTH2", []byte("user=" + a.username + "\x01auth=Bearer " + a.token + "\x01\x01"), nil
}

// Next answers the error challenge with an empty response, after which
// the server sends its tagged NO (Google's documented exchange).
func (a *xoauth2Client) Next(challenge []byte) ([]byte, error) {
	return []byte{}, nil
}

// oauthBearerClient is RFC 7628 OAUTHBEARER. Unlike go-sasl's client it
// answers an error challenge with the %x01 the RFC asks for (§3.2.3), so
// the server ends the exchange with NO instead of waiting.
type oauthBearerClient struct {
	sasl.Client
}

func (a oauthBearerClient) Next(challenge []byte) ([]byte, error) {
	return []byte{0x01}, nil
}

func newSASLClient(mech, username, token string) sasl.Client {
	if mech == AuthOAuthBearer {
		return oauthBearerClient{sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{Username: username, Token: token})}
	}
	return &xoauth2Client{username: username, token: token}
}
