package autopilot_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/internal/testclock"
	"github.com/tlsrpt/tlsrpt/rollout"
	"github.com/tlsrpt/tlsrpt/rollout/autopilot"
	"github.com/tlsrpt/tlsrpt/rollout/publish"
	"github.com/tlsrpt/tlsrpt/rollout/publish/publishtest"
)

// The autopilot tests run on a simulated clock over a real PostgreSQL
// (dbtest), a loopback DNS server taking RFC 2136 updates signed with TSIG,
// and a policy host over TLS (publishtest) that serves what tlsrpt hosts
// for the domain (or, before the first version, the operator's own
// testing policy). Each simulated day stores the day before's reports and
// runs one evaluation.

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

// start is the first simulated day, 06:00 UTC (evaluations run then).
var start = testclock.Base(time.Date(2026, 3, 2, 6, 0, 0, 0, time.UTC))

// clock is the one clock of a test: the store, the promoter and the
// engine read it; the test moves it a day at a time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// hook is the webhook receiver: it keeps the alerts it got.
type hook struct {
	mu     sync.Mutex
	alerts []publish.Alert
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var msg struct {
		Text  string        `json:"text"`
		Alert publish.Alert `json:"tlsrpt"`
	}
	b, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(b, &msg); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	h.alerts = append(h.alerts, msg.Alert)
	h.mu.Unlock()
}

func (h *hook) got() []publish.Alert {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]publish.Alert(nil), h.alerts...)
}

type env struct {
	*publishtest.Env
	d      *db.DB
	clock  *clock
	engine *autopilot.Engine
	p      *publish.Promoter
	hook   *hook
	// down makes the policy host answer 503: a blocker of the live check.
	down atomic.Bool
}

func newEnv(t *testing.T, domains ...string) *env {
	t.Helper()
	e := &env{d: dbtest.New(t), clock: &clock{t: start}, hook: &hook{}}
	e.d.Now = e.clock.Now
	var records, names []string
	for _, d := range domains {
		records = append(append(records, publishtest.Records(d)...), publishtest.TLSRPTRecord(d))
		names = append(names, "mta-sts."+d)
		if _, _, err := e.d.AddDomain(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
	e.Env = publishtest.Start(t, records...)
	e.Serve(t, http.HandlerFunc(e.servePolicy), &tls.Config{Certificates: []tls.Certificate{publishtest.Leaf(t, e.CA, names...)}})
	hookSrv := httptest.NewServer(e.hook)
	t.Cleanup(hookSrv.Close)
	e.p = &publish.Promoter{DB: e.d, Now: e.clock.Now, PromoteConfig: publish.PromoteConfig{
		HostPolicy: true,
		Records:    e.Update(publishtest.Secret),
		Checker:    e.Checker,
		Notifier:   &publish.Notifier{WebhookURL: hookSrv.URL},
	}}
	e.engine = autopilot.New(e.p)
	return e
}

// servePolicy is the policy host: the version tlsrpt hosts for the domain
// of the Host header, else the operator's testing policy.
func (e *env) servePolicy(w http.ResponseWriter, r *http.Request) {
	if e.down.Load() || r.URL.Path != "/.well-known/mta-sts.txt" {
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	publishtest.HostedOrTesting(e.d, testingPolicy)(w, r)
}

func testingPolicy(domain string) string {
	return "version: STSv1\r\nmode: testing\r\nmx: mx1." + domain + "\r\nmx: mx2." + domain + "\r\nmax_age: 86400\r\n"
}

// seedTesting stores days of clean testing reports before the clock's day.
func (e *env) seedTesting(t *testing.T, domain string, days int) {
	t.Helper()
	today := day(e.clock.Now())
	for i := days; i >= 1; i-- {
		publishtest.SeedDay(t, e.d, domain, today.AddDate(0, 0, -i), rollout.ModeTesting, false)
	}
}

// mode is what the domain serves now: the newest version's mode, else
// testing.
func (e *env) mode(t *testing.T, domain string) rollout.Mode {
	t.Helper()
	v, err := e.d.LatestPolicyVersion(context.Background(), domain)
	if errors.Is(err, db.ErrNotFound) {
		return rollout.ModeTesting
	}
	if err != nil {
		t.Fatal(err)
	}
	return v.Policy.Mode
}

func day(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}
