package api

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/internal/testclock"
	"github.com/tlsrpt/tlsrpt/internal/torture"
)

// latencies collects request durations per class.
type latencies struct {
	mu sync.Mutex
	d  map[string][]time.Duration
}

func (l *latencies) add(class string, d time.Duration) {
	l.mu.Lock()
	l.d[class] = append(l.d[class], d)
	l.mu.Unlock()
}

// percentiles returns p50, p95, p99 and the maximum in milliseconds.
func percentiles(ds []time.Duration) map[string]float64 {
	if len(ds) == 0 {
		return nil
	}
	slices.Sort(ds)
	at := func(p float64) float64 {
		return float64(ds[min(len(ds)-1, int(p*float64(len(ds))))].Microseconds()) / 1000
	}
	return map[string]float64{"p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "max": at(1)}
}

// TestHTTPSLoadTorture runs report senders and dashboard readers against
// the server over HTTPS on loopback for a fixed time: no 5xx, the rate
// limit holds per client address, every report answered "stored" is
// stored exactly once, and the latencies are recorded.
func TestHTTPSLoadTorture(t *testing.T) {
	const perSecond, burst = 10, 10
	e := newTestEnv(t, func(c *Config) {
		c.PublicRate = Rate{Per: perSecond, Every: time.Second, Burst: burst}
		// The limiter refills in real time; sessions and report days
		// stay on the test's clock.
		c.Now = testclock.Running(testNow)
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	})
	if _, _, err := e.d.AddDomain(t.Context(), "example.com"); err != nil {
		t.Fatal(err)
	}
	seedReports(t, e.d, testNow, seedOptions{domain: "example.com", days: 14})
	viewer := e.login(db.RoleViewer)
	srv := httptest.NewUnstartedServer(e.s.Handler())
	srv.StartTLS()
	defer srv.Close()
	client := srv.Client()
	client.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
	client.Timeout = 30 * time.Second
	// A redirect is an answer: followed, a 303 to the login page would
	// read as the page itself.
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	duration := time.Duration(torture.Count(4, 60)) * time.Second
	const senders, readers = 6, 4
	template := string(reportJSONBody(t, "load.example", "LOAD-ID"))
	lat := &latencies{d: map[string][]time.Duration{}}
	var mu sync.Mutex
	codes := map[string]map[int]int{"post": {}, "dashboard": {}, "flood": {}}
	okPerIP := map[string]int{}
	var storedIDs []string
	var failures []string
	fail := func(f string, a ...any) {
		mu.Lock()
		if len(failures) < 20 {
			failures = append(failures, fmt.Sprintf(f, a...))
		}
		mu.Unlock()
	}
	deadline := time.Now().Add(duration)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range senders {
		ip := fmt.Sprintf("203.0.113.%d", i+1)
		wg.Go(func() {
			for n := 0; time.Now().Before(deadline); n++ {
				id := fmt.Sprintf("load-%d-%d", i, n)
				req, _ := http.NewRequest("POST", srv.URL+"/tlsrpt", strings.NewReader(strings.Replace(template, "LOAD-ID", id, 1)))
				req.Header.Set("Content-Type", "application/tlsrpt+json")
				req.Header.Set("X-Forwarded-For", ip)
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					fail("POST: %v", err)
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				lat.add(fmt.Sprintf("post %d", resp.StatusCode), time.Since(t0))
				mu.Lock()
				codes["post"][resp.StatusCode]++
				if resp.StatusCode == http.StatusOK {
					okPerIP[ip]++
					if bytes.Contains(body, []byte(`"stored":1`)) {
						storedIDs = append(storedIDs, id)
					}
				}
				mu.Unlock()
				if resp.StatusCode >= 500 || (resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusTooManyRequests) {
					fail("POST %s = %d %.200s", id, resp.StatusCode, body)
				}
				if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
					fail("429 without Retry-After")
				}
			}
		})
	}
	// Four flooders from one address send cheap garbage as fast as it can:
	// past the burst it must get 429s before its body is even read.
	floodPassed := 0
	for range 4 {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				req, _ := http.NewRequest("POST", srv.URL+"/tlsrpt", strings.NewReader("{}"))
				req.Header.Set("Content-Type", "application/tlsrpt+json")
				req.Header.Set("X-Forwarded-For", "198.51.100.66")
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					fail("flood POST: %v", err)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lat.add("flood", time.Since(t0))
				mu.Lock()
				codes["flood"][resp.StatusCode]++
				if resp.StatusCode != http.StatusTooManyRequests {
					floodPassed++
				}
				mu.Unlock()
				if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusTooManyRequests {
					fail("flood POST = %d", resp.StatusCode)
				}
			}
		})
	}
	// Each page with a text only the page itself has, not the login form.
	pages := []struct{ path, want string }{
		{"/", "example.com"}, {"/domains/example.com?days=30", "example.com"},
		{"/reports?domain=example.com", "example.com"}, {"/api/v1/domains", `"example.com"`},
	}
	for i := range readers {
		wg.Go(func() {
			for n := 0; time.Now().Before(deadline); n++ {
				pg := pages[(i+n)%len(pages)]
				p := pg.path
				req, _ := http.NewRequest("GET", srv.URL+p, nil)
				req.AddCookie(&http.Cookie{Name: sessionCookie, Value: viewer.cookie})
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					fail("GET %s: %v", p, err)
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				lat.add("dashboard", time.Since(t0))
				mu.Lock()
				codes["dashboard"][resp.StatusCode]++
				mu.Unlock()
				if resp.StatusCode != http.StatusOK {
					fail("GET %s = %d (Location %q)", p, resp.StatusCode, resp.Header.Get("Location"))
				} else if !bytes.Contains(body, []byte(pg.want)) || bytes.Contains(body, []byte(`action="/login"`)) {
					fail("GET %s: 200 without %q, or the login form: %.200s", p, pg.want, body)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	for _, f := range failures {
		t.Error(f)
	}
	// The limit: the burst, plus what refills while the run lasts.
	maxOK := burst + int(elapsed.Seconds()*perSecond) + 1
	for ip, n := range okPerIP {
		if n > maxOK {
			t.Errorf("client %s got %d reports through in %s; the limit allows %d", ip, n, elapsed, maxOK)
		}
	}
	if floodPassed > maxOK {
		t.Errorf("the flooder got %d requests past the limiter in %s; the limit allows %d", floodPassed, elapsed, maxOK)
	}
	seen := storedReportKeys(t, e.d)
	loadRows := 0
	for k, c := range seen {
		if strings.HasPrefix(k, "load.example|") {
			loadRows += c
		}
	}
	lost := max(0, len(storedIDs)-loadRows)
	dup := max(0, loadRows-len(storedIDs))
	if lost != 0 || dup != 0 {
		t.Errorf("%d reports answered stored, %d rows: lost %d, duplicated %d", len(storedIDs), loadRows, lost, dup)
	}
	if codes["flood"][http.StatusTooManyRequests] == 0 {
		t.Errorf("no 429 at all: the load never reached the limit, which then proves nothing")
	}
	torture.Record(t, map[string]any{"seconds": elapsed.Seconds(), "senders": senders, "readers": readers,
		"rate_per_ip": fmt.Sprintf("%d/s burst %d", perSecond, burst), "codes": codes, "stored": loadRows,
		"lost": lost, "duplicated": dup, "post_stored_ms": percentiles(lat.d["post 200"]), "post_refused_ms": percentiles(lat.d["post 429"]), "dashboard_ms": percentiles(lat.d["dashboard"]),
		"flood_passed": floodPassed, "flood_limit": maxOK, "flood_ms": percentiles(lat.d["flood"]), "post_per_second": float64(len(lat.d["post 200"])+len(lat.d["post 429"])) / elapsed.Seconds(), "dashboard_per_second": float64(len(lat.d["dashboard"])) / elapsed.Seconds()})
}
