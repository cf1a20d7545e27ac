package rollout

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// HetznerAPI is the base URL of the Hetzner Cloud API, which took over
// Hetzner DNS (zones and RRsets) from the older DNS console API.
const HetznerAPI = "https://api.hetzner.cloud/v1"

// Hetzner publishes TXT records through the Hetzner Cloud API's zone RRsets
// (/zones/{id_or_name}/rrsets) with a read-write project API token.
type Hetzner struct {
	Token string
	// Zone is the zone's name (example.com) or id; "" means the
	// record's domain.
	Zone string
	// BaseURL replaces HetznerAPI (tests).
	BaseURL string
	// TTL in seconds; 0 means 300.
	TTL int
	// Client is the HTTP client; nil means one with a 30 s timeout.
	Client *http.Client
}

// Method implements RecordPublisher.
func (h *Hetzner) Method() string { return RecordHetzner }

type hzError struct {
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func (e hzError) err(status int) error {
	if status/100 == 2 && e.Error == nil {
		return nil
	}
	if e.Error != nil {
		return fmt.Errorf("%w: status %d: %s: %s", ErrPublish, status, e.Error.Code, e.Error.Message)
	}
	return fmt.Errorf("%w: status %d", ErrPublish, status)
}

type hzRecord struct {
	Value string `json:"value"`
}

// PublishTXT implements RecordPublisher: it sets the records of the TXT
// RRset at name (set_records replaces them all), or creates the RRset.
// Hetzner wants TXT values quoted as in a zone file.
func (h *Hetzner) PublishTXT(ctx context.Context, name, value string) error {
	zone := zoneOf(h.Zone, name)
	rel, ok := relativeName(name, zone)
	if !ok && h.Zone != "" && !strings.Contains(h.Zone, ".") {
		// A zone id: the API knows the zone; the name must be relative to
		// the record's domain.
		zone = zoneOf("", name)
		rel, ok = relativeName(name, zone)
		zone = h.Zone
	}
	if !ok {
		return fmt.Errorf("hetzner: %s: %w: the name is not in zone %s", name, ErrPublish, zone)
	}
	base := h.BaseURL
	if base == "" {
		base = HetznerAPI
	}
	pc := newProviderClient(strings.TrimSuffix(base, "/"), h.Token, h.Client)
	zpath := "/zones/" + url.PathEscape(zone) + "/rrsets"
	rpath := zpath + "/" + url.PathEscape(rel) + "/TXT"
	records := []hzRecord{{Value: quoteTXT(value)}}

	var got hzError
	st, err := pc.call(ctx, http.MethodGet, rpath, nil, &got)
	if err != nil {
		return fmt.Errorf("hetzner: reading the TXT RRset %s: %w", rel, err)
	}
	var res hzError
	switch {
	case st == http.StatusNotFound:
		ttl := h.TTL
		if ttl <= 0 {
			ttl = 300
		}
		in := map[string]any{"name": rel, "type": "TXT", "ttl": ttl, "records": records}
		st, err = pc.call(ctx, http.MethodPost, zpath, in, &res)
	case st/100 == 2:
		st, err = pc.call(ctx, http.MethodPost, rpath+"/actions/set_records", map[string]any{"records": records}, &res)
	default:
		return fmt.Errorf("hetzner: reading the TXT RRset %s: %w", rel, got.err(st))
	}
	if err == nil {
		err = res.err(st)
	}
	if err != nil {
		return fmt.Errorf("hetzner: writing the TXT RRset %s: %w", rel, err)
	}
	return nil
}
