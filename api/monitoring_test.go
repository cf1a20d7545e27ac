package api

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/internal/testreq"
)

// The monitoring files operators load (README "Monitoring").
const (
	rulesFile     = "../docs/prometheus/tlsrpt.rules.yml"
	rulesTestFile = "../docs/prometheus/tlsrpt.rules.test.yml"
	grafanaFile   = "../docs/prometheus/grafana-tlsrpt.json"
)

// requirePromtool skips the test unless promtool is on PATH; when
// TLSRPT_TEST_REQUIRE lists promtool, its absence is a failure. The test
// command puts one unpacked from Debian's prometheus package on PATH
// (scripts/test.sh), without installing the package.
func requirePromtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	testreq.Need(t, "promtool", "promtool", err)
	return path
}

// TestMonitoringFiles: the alert rules pass promtool's check and their
// unit tests, the Grafana dashboard is a dashboard over a ${datasource}
// with a domain variable, and every tlsrpt_ metric either file names is
// served by /metrics (with the token, every per-domain series seeded), so
// the files cannot drift from the code.
func TestMonitoringFiles(t *testing.T) {
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	dash, err := os.ReadFile(grafanaFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("promtool", func(t *testing.T) {
		promtool := requirePromtool(t)
		for _, args := range [][]string{{"check", "rules", rulesFile}, {"test", "rules", rulesTestFile}} {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			out, err := exec.CommandContext(ctx, promtool, args...).CombinedOutput()
			cancel()
			if err != nil {
				t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
	})
	t.Run("grafana", func(t *testing.T) { checkGrafana(t, dash) })

	e := newTestEnv(t, func(c *Config) {
		c.MetricsToken = metricsToken
		c.PollerStatus = func() PollerStatus { return PollerStatus{Connected: true, LastSuccess: testNow.Add(-time.Minute)} }
	})
	seedMonitoring(t, e)
	served, _ := e.scrapeValues()
	names := regexp.MustCompile(`tlsrpt_[a-z_]+`)
	for _, f := range []struct {
		name string
		text []byte
	}{{rulesFile, rules}, {grafanaFile, dash}} {
		used := names.FindAllString(string(f.text), -1)
		if len(used) < 5 {
			t.Errorf("%s names %d tlsrpt_ metrics, want more", f.name, len(used))
		}
		for _, n := range used {
			if !servesMetric(served, n) {
				t.Errorf("%s uses %s, which /metrics does not serve", f.name, n)
			}
		}
	}
	// The outcomes the rules and panels select are the ones counted.
	outcomes := regexp.MustCompile(`outcome=~?\\?"([^"\\]+)\\?"`)
	for _, text := range [][]byte{rules, dash} {
		for _, m := range outcomes.FindAllStringSubmatch(string(text), -1) {
			for _, o := range strings.Split(m[1], "|") {
				if !slices.Contains(httpsOutcomes, o) {
					t.Errorf("%s selects outcome %q; /metrics counts %v", m[0], o, httpsOutcomes)
				}
			}
		}
	}
}

// servesMetric reports whether served has a sample of the metric name.
func servesMetric(served map[string]float64, name string) bool {
	for s := range served {
		if s == name || strings.HasPrefix(s, name+"{") {
			return true
		}
	}
	return false
}

// checkGrafana checks the parts of the dashboard model Grafana needs to
// import it: a schemaVersion, panels whose queries use the ${datasource}
// variable, and the datasource and domain variables.
func checkGrafana(t *testing.T, b []byte) {
	type ds struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	}
	type panel struct {
		ID         int    `json:"id"`
		Type       string `json:"type"`
		Title      string `json:"title"`
		Datasource *ds    `json:"datasource"`
		Targets    []struct {
			Datasource *ds    `json:"datasource"`
			Expr       string `json:"expr"`
			RefID      string `json:"refId"`
		} `json:"targets"`
		GridPos struct{ W, H int } `json:"gridPos"`
	}
	var d struct {
		Title         string  `json:"title"`
		UID           string  `json:"uid"`
		SchemaVersion int     `json:"schemaVersion"`
		Panels        []panel `json:"panels"`
		Templating    struct {
			List []struct {
				Name  string          `json:"name"`
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", grafanaFile, err)
	}
	if d.Title == "" || d.UID == "" || d.SchemaVersion < 30 || len(d.Panels) < 5 {
		t.Errorf("%s: title %q, uid %q, schemaVersion %d, %d panels", grafanaFile, d.Title, d.UID, d.SchemaVersion, len(d.Panels))
	}
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel %q: id %d used twice", p.Title, p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if p.Title == "" || p.GridPos.W == 0 || p.GridPos.H == 0 || len(p.Targets) == 0 {
			t.Errorf("panel %d %q: type %q, size %dx%d, %d targets", p.ID, p.Title, p.Type, p.GridPos.W, p.GridPos.H, len(p.Targets))
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource %+v, want uid ${datasource}", p.Title, p.Datasource)
		}
		for _, q := range p.Targets {
			if q.Datasource == nil || q.Datasource.UID != "${datasource}" || q.Expr == "" || q.RefID == "" {
				t.Errorf("panel %q: target %+v", p.Title, q)
			}
		}
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type + " " + string(v.Query)
	}
	if got := vars["datasource"]; got != `datasource "prometheus"` {
		t.Errorf("variable datasource = %q, want a prometheus datasource variable", got)
	}
	if got := vars["domain"]; !strings.HasPrefix(got, "query ") || !strings.Contains(got, "label_values(") || !strings.Contains(got, ", domain)") {
		t.Errorf("variable domain = %q, want a label_values(..., domain) query", got)
	}
}
