package rollout

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// CloudflareAPI is the base URL of Cloudflare's API v4.
const CloudflareAPI = "https://api.cloudflare.com/client/v4"

// Cloudflare publishes TXT records through Cloudflare's DNS records API
// (v4: /zones, /zones/{zone_id}/dns_records) with an API token allowed to
// edit the zone's DNS ("Zone.DNS: Edit").
type Cloudflare struct {
	// Token is the API token.
	Token string
	// Zone is the zone name (example.com), "" meaning the record's
	// domain; ZoneID, if set, saves the lookup of its id.
	Zone   string
	ZoneID string
	// BaseURL replaces CloudflareAPI (tests).
	BaseURL string
	// TTL in seconds; 0 or 1 means Cloudflare's "automatic".
	TTL int
	// Client is the HTTP client; nil means one with a 30 s timeout.
	Client *http.Client
}

// Method implements RecordPublisher.
func (c *Cloudflare) Method() string { return RecordCloudflare }

// cfEnvelope is every Cloudflare v4 answer: success, errors, result.
type cfEnvelope[T any] struct {
	Success bool `json:"success"`
	Errors  []struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"errors"`
	Result T `json:"result"`
}

func (e cfEnvelope[T]) err(status int) error {
	if e.Success && status/100 == 2 {
		return nil
	}
	var msgs []string
	for _, x := range e.Errors {
		msgs = append(msgs, fmt.Sprintf("%d %s", x.Code, x.Message))
	}
	return fmt.Errorf("%w: status %d: %s", ErrPublish, status, strings.Join(msgs, "; "))
}

type cfRecord struct {
	ID      string `json:"id,omitempty"`
	Type    string `json:"type"`
	Name    string `json:"name"`
	Content string `json:"content"`
	TTL     int    `json:"ttl"`
}

// PublishTXT implements RecordPublisher: it updates the first TXT record at
// name, deletes the others, or creates one when there is none.
func (c *Cloudflare) PublishTXT(ctx context.Context, name, value string) error {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	base := c.BaseURL
	if base == "" {
		base = CloudflareAPI
	}
	pc := newProviderClient(strings.TrimSuffix(base, "/"), c.Token, c.Client)
	zoneID := c.ZoneID
	if zoneID == "" {
		var zones cfEnvelope[[]struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		}]
		zone := zoneOf(c.Zone, name)
		st, err := pc.call(ctx, http.MethodGet, "/zones?name="+url.QueryEscape(zone), nil, &zones)
		if err != nil {
			return fmt.Errorf("cloudflare: finding zone %s: %w", zone, err)
		}
		if err := zones.err(st); err != nil {
			return fmt.Errorf("cloudflare: finding zone %s: %w", zone, err)
		}
		if len(zones.Result) != 1 {
			return fmt.Errorf("cloudflare: finding zone %s: %w: %d zones of that name for this token", zone, ErrPublish, len(zones.Result))
		}
		zoneID = zones.Result[0].ID
	}
	zpath := "/zones/" + url.PathEscape(zoneID) + "/dns_records"
	var list cfEnvelope[[]cfRecord]
	st, err := pc.call(ctx, http.MethodGet, zpath+"?type=TXT&name="+url.QueryEscape(name), nil, &list)
	if err != nil {
		return fmt.Errorf("cloudflare: listing TXT records of %s: %w", name, err)
	}
	if err := list.err(st); err != nil {
		return fmt.Errorf("cloudflare: listing TXT records of %s: %w", name, err)
	}
	ttl := c.TTL
	if ttl <= 0 {
		ttl = 1
	}
	rec := cfRecord{Type: "TXT", Name: name, Content: value, TTL: ttl}
	var res cfEnvelope[cfRecord]
	if len(list.Result) == 0 {
		st, err = pc.call(ctx, http.MethodPost, zpath, rec, &res)
	} else {
		st, err = pc.call(ctx, http.MethodPut, zpath+"/"+url.PathEscape(list.Result[0].ID), rec, &res)
	}
	if err == nil {
		err = res.err(st)
	}
	if err != nil {
		return fmt.Errorf("cloudflare: writing the TXT record of %s: %w", name, err)
	}
	for _, extra := range list.Result[min(1, len(list.Result)):] {
		var del cfEnvelope[struct{}]
		st, err := pc.call(ctx, http.MethodDelete, zpath+"/"+url.PathEscape(extra.ID), nil, &del)
		if err == nil {
			err = del.err(st)
		}
		if err != nil {
			return fmt.Errorf("cloudflare: deleting the extra TXT record %s of %s: %w", extra.ID, name, err)
		}
	}
	return nil
}
