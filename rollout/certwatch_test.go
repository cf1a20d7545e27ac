package rollout

import (
	"reflect"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/rollout/smtptest"
)

func TestCertAlerts(t *testing.T) {
	ok := func(host, addr string, days int) CertState {
		return CertState{Host: host, Address: addr, HasCert: true, DaysLeft: days}
	}
	bad := func(host, addr, detail string) CertState {
		return CertState{Host: host, Address: addr, Failing: true, Detail: detail}
	}
	for _, tc := range []struct {
		name      string
		prev, cur []CertState
		want      []string
	}{
		{"healthy stays quiet", []CertState{ok("mx1", "a:25", 60)}, []CertState{ok("mx1", "a:25", 59)}, nil},
		{"crosses 14 days", []CertState{ok("mx1", "a:25", 14)}, []CertState{ok("mx1", "a:25", 13)},
			[]string{"the certificate of MX mx1 at a:25 expires in 13 days"}},
		{"already close: once only", []CertState{ok("mx1", "a:25", 13)}, []CertState{ok("mx1", "a:25", 12)}, nil},
		{"starts failing", []CertState{ok("mx1", "a:25", 60)}, []CertState{bad("mx1", "a:25", "no STARTTLS")},
			[]string{"MX mx1 at a:25 started failing: no STARTTLS"}},
		{"still failing: once only", []CertState{bad("mx1", "a:25", "x")}, []CertState{bad("mx1", "a:25", "x")}, nil},
		{"policy host, first probe", nil, []CertState{ok("mta-sts.d", "", 3)},
			[]string{"the certificate of the policy host mta-sts.d expires in 3 days"}},
		{"renewed", []CertState{ok("mx1", "a:25", 3)}, []CertState{ok("mx1", "a:25", 89)}, nil},
	} {
		if got := CertAlerts(tc.prev, tc.cur, CertAlertDays); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: CertAlerts() = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestCertStates takes the states from a real probe: the good MX verifies,
// the expired and wrong-name ones and the one without STARTTLS fail, the
// policy host's certificate is seen.
func TestCertStates(t *testing.T) {
	const d = "probe.example"
	e := newProbeEnv(t, d, func(ca *smtptest.CA, now time.Time) []smtptest.Host {
		expired := smtptest.Host{Name: "mx2." + d, Cert: ca.Leaf(t, now.AddDate(0, -3, 0), now.AddDate(0, 0, -1), "mx2."+d)}
		return []smtptest.Host{valid(t, ca, now, 60, "mx1."+d), expired, {Name: "mx3." + d, Mode: smtptest.NoSTARTTLS}}
	})
	r := e.in.Check(t.Context(), d)
	var got []string
	for _, s := range CertStates(r) {
		got = append(got, s.name()+" "+map[bool]string{true: "failing", false: "ok"}[s.Failing])
	}
	p := e.port()
	want := []string{
		"the policy host mta-sts.probe.example ok",
		"MX mx1.probe.example at 127.0.0.11:" + p + " ok", "MX mx1.probe.example at 127.0.0.12:" + p + " ok",
		"MX mx2.probe.example at 127.0.0.21:" + p + " failing", "MX mx2.probe.example at 127.0.0.22:" + p + " failing",
		"MX mx3.probe.example at 127.0.0.31:" + p + " failing", "MX mx3.probe.example at 127.0.0.32:" + p + " failing",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("CertStates() = %q, want %q", got, want)
	}
}
