package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// cfServer speaks the shape of Cloudflare's API v4 for zones and DNS
// records: bearer token, the success/errors/result envelope.
type cfServer struct {
	mu      sync.Mutex
	records map[string]cfRecord // by id
	next    int
	calls   []string
}

func (s *cfServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, r.Method+" "+r.URL.Path)
	w.Header().Set("Content-Type", "application/json")
	reply := func(status int, result any) {
		w.WriteHeader(status)
		env := map[string]any{"success": status/100 == 2, "errors": []any{}, "result": result}
		if status/100 != 2 {
			env["errors"] = []any{map[string]any{"code": 10000, "message": "Authentication error"}}
		}
		json.NewEncoder(w).Encode(env)
	}
	if r.Header.Get("Authorization") != "Bearer cf-token" {
		reply(http.StatusForbidden, nil)
		return
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/zones":
		if r.URL.Query().Get("name") == "example.com" {
			reply(200, []any{map[string]string{"id": "zone1", "name": "example.com"}})
		} else {
			reply(200, []any{})
		}
	case len(parts) >= 3 && parts[1] == "zone1" && parts[2] == "dns_records":
		var in cfRecord
		if r.Body != nil {
			json.NewDecoder(r.Body).Decode(&in)
		}
		switch {
		case r.Method == http.MethodGet && len(parts) == 3:
			out := []cfRecord{}
			for _, rec := range s.records {
				if rec.Type == r.URL.Query().Get("type") && rec.Name == r.URL.Query().Get("name") {
					out = append(out, rec)
				}
			}
			reply(200, out)
		case r.Method == http.MethodPost && len(parts) == 3:
			s.next++
			in.ID = fmt.Sprint("rec", s.next)
			s.records[in.ID] = in
			reply(200, in)
		case r.Method == http.MethodPut && len(parts) == 4:
			in.ID = parts[3]
			s.records[in.ID] = in
			reply(200, in)
		case r.Method == http.MethodDelete && len(parts) == 4:
			delete(s.records, parts[3])
			reply(200, map[string]string{"id": parts[3]})
		default:
			reply(http.StatusNotFound, nil)
		}
	default:
		reply(http.StatusNotFound, nil)
	}
}

func (s *cfServer) txt(name string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, r := range s.records {
		if r.Type == "TXT" && r.Name == name {
			out = append(out, r.Content)
		}
	}
	return out
}

func TestCloudflare(t *testing.T) {
	fake := &cfServer{records: map[string]cfRecord{
		"a": {ID: "a", Type: "TXT", Name: "_mta-sts.example.com", Content: "v=STSv1; id=old1"},
		"b": {ID: "b", Type: "TXT", Name: "_mta-sts.example.com", Content: "v=STSv1; id=old2"},
		"c": {ID: "c", Type: "TXT", Name: "example.com", Content: "v=spf1 -all"},
	}}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	ctx := context.Background()
	c := &Cloudflare{Token: "cf-token", Zone: "example.com", BaseURL: srv.URL}
	if err := c.PublishTXT(ctx, "_mta-sts.example.com.", "v=STSv1; id=new"); err != nil {
		t.Fatalf("PublishTXT over two records: %v", err)
	}
	if got := fake.txt("_mta-sts.example.com"); len(got) != 1 || got[0] != "v=STSv1; id=new" {
		t.Errorf("records after PublishTXT = %q, want the one new value", got)
	}
	if got := fake.txt("example.com"); len(got) != 1 {
		t.Errorf("apex TXT = %q, want it untouched", got)
	}
	// No record yet: one is created.
	if err := c.PublishTXT(ctx, "_mta-sts.sub.example.com", "v=STSv1; id=s1"); err != nil {
		t.Fatalf("PublishTXT of a new name: %v", err)
	}
	if got := fake.txt("_mta-sts.sub.example.com"); len(got) != 1 || got[0] != "v=STSv1; id=s1" {
		t.Errorf("records of the new name = %q", got)
	}
	bad := &Cloudflare{Token: "wrong", Zone: "example.com", BaseURL: srv.URL}
	if err := bad.PublishTXT(ctx, "_mta-sts.example.com", "v=STSv1; id=x"); !errors.Is(err, ErrPublish) || !strings.Contains(err.Error(), "Authentication error") {
		t.Errorf("PublishTXT with a wrong token = %v, want ErrPublish with the API's message", err)
	}
	unknown := &Cloudflare{Token: "cf-token", Zone: "example.org", BaseURL: srv.URL}
	if err := unknown.PublishTXT(ctx, "_mta-sts.example.org", "v=STSv1; id=x"); !errors.Is(err, ErrPublish) {
		t.Errorf("PublishTXT in an unknown zone = %v, want ErrPublish", err)
	}
}

// hzServer speaks the shape of the Hetzner Cloud API's zone RRsets.
type hzServer struct {
	mu     sync.Mutex
	rrsets map[string][]string // "name/TYPE" → quoted values
}

func (s *hzServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	fail := func(status int, code, msg string) {
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
	}
	if r.Header.Get("Authorization") != "Bearer hz-token" {
		fail(http.StatusUnauthorized, "unauthorized", "unable to authenticate")
		return
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) < 3 || parts[0] != "zones" || parts[1] != "example.com" || parts[2] != "rrsets" {
		fail(http.StatusNotFound, "not_found", "zone not found")
		return
	}
	var in struct {
		Name    string     `json:"name"`
		Type    string     `json:"type"`
		TTL     int        `json:"ttl"`
		Records []hzRecord `json:"records"`
	}
	json.NewDecoder(r.Body).Decode(&in)
	values := func() []string {
		var v []string
		for _, rec := range in.Records {
			v = append(v, rec.Value)
		}
		return v
	}
	switch {
	case r.Method == http.MethodGet && len(parts) == 5:
		key := parts[3] + "/" + parts[4]
		if _, ok := s.rrsets[key]; !ok {
			fail(http.StatusNotFound, "not_found", "rrset not found")
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"rrset": map[string]any{"id": key, "name": parts[3], "type": parts[4]}})
	case r.Method == http.MethodPost && len(parts) == 3:
		key := in.Name + "/" + in.Type
		if _, ok := s.rrsets[key]; ok {
			fail(http.StatusConflict, "uniqueness_error", "rrset exists")
			return
		}
		s.rrsets[key] = values()
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]any{"rrset": map[string]any{"id": key}, "action": map[string]any{"id": 1}})
	case r.Method == http.MethodPost && len(parts) == 7 && parts[6] == "set_records":
		s.rrsets[parts[3]+"/"+parts[4]] = values()
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]any{"action": map[string]any{"id": 2}})
	default:
		fail(http.StatusNotFound, "not_found", "no such route")
	}
}

func TestHetzner(t *testing.T) {
	fake := &hzServer{rrsets: map[string][]string{"_mta-sts/TXT": {`"v=STSv1; id=old1"`, `"v=STSv1; id=old2"`}}}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	ctx := context.Background()
	h := &Hetzner{Token: "hz-token", Zone: "example.com", BaseURL: srv.URL}
	if err := h.PublishTXT(ctx, "_mta-sts.example.com.", "v=STSv1; id=new"); err != nil {
		t.Fatalf("PublishTXT over an existing RRset: %v", err)
	}
	if got := fake.rrsets["_mta-sts/TXT"]; len(got) != 1 || got[0] != `"v=STSv1; id=new"` {
		t.Errorf("RRset after PublishTXT = %q, want the one quoted value", got)
	}
	if err := h.PublishTXT(ctx, "_mta-sts.sub.example.com", "v=STSv1; id=s1"); err != nil {
		t.Fatalf("PublishTXT creating an RRset: %v", err)
	}
	if got := fake.rrsets["_mta-sts.sub/TXT"]; len(got) != 1 || got[0] != `"v=STSv1; id=s1"` {
		t.Errorf("new RRset = %q", got)
	}
	bad := &Hetzner{Token: "wrong", Zone: "example.com", BaseURL: srv.URL}
	if err := bad.PublishTXT(ctx, "_mta-sts.example.com", "v=STSv1; id=x"); !errors.Is(err, ErrPublish) || !strings.Contains(err.Error(), "unauthorized") {
		t.Errorf("PublishTXT with a wrong token = %v, want ErrPublish naming the code", err)
	}
	if err := h.PublishTXT(ctx, "_mta-sts.example.org", "v=STSv1; id=x"); !errors.Is(err, ErrPublish) {
		t.Errorf("PublishTXT outside the zone = %v, want ErrPublish", err)
	}
}
