package rollout

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// maxProviderResponse bounds a DNS provider API answer: a zone's records
// for one name fit many times over.
const maxProviderResponse = 1 << 20

// providerClient is the HTTP side the provider clients share: a JSON
// request with a bearer token, a bounded answer.
type providerClient struct {
	base   string
	token  string
	client *http.Client
}

func newProviderClient(base, token string, c *http.Client) providerClient {
	if c == nil {
		c = &http.Client{Timeout: 30 * time.Second}
	}
	return providerClient{base: base, token: token, client: c}
}

// call sends in (when not nil) as JSON and decodes the answer into out
// (when not nil). It returns the status; an answer it cannot read is an
// error, a non-2xx status is for the caller to judge.
func (p providerClient) call(ctx context.Context, method, path string, in, out any) (int, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, fmt.Errorf("encoding %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, p.base+path, body)
	if err != nil {
		return 0, fmt.Errorf("building %s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+p.token)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w: %w", method, path, ErrPublish, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxProviderResponse+1))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("reading the answer to %s %s: %w", method, path, err)
	}
	if len(b) > maxProviderResponse {
		return resp.StatusCode, fmt.Errorf("reading the answer to %s %s: %w: over %d bytes", method, path, ErrPublish, maxProviderResponse)
	}
	if out != nil && len(bytes.TrimSpace(b)) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decoding the answer to %s %s (status %d): %w", method, path, resp.StatusCode, err)
		}
	}
	return resp.StatusCode, nil
}
