package reportgen

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
)

func TestMailSignatureVerifies(t *testing.T) {
	day := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for _, rep := range Reporters {
		r := &Report{Reporter: rep, Day: day, Successful: 10,
			Policy: Policy{Type: "sts", Mode: "testing", MaxAge: 86400, Domain: "example.com", MX: []string{"mx.example.com"}}}
		msg := r.Mail("tlsrpt@example.com")
		vs, err := dkim.VerifyWithOptions(bytes.NewReader(msg), &dkim.VerifyOptions{LookupTXT: LookupTXT})
		if err != nil || len(vs) != 1 {
			t.Fatalf("%s: Verify() = %v, %v, want one verification", rep.Domain, vs, err)
		}
		if vs[0].Err != nil || vs[0].Domain != rep.Domain {
			t.Errorf("%s: verification = %v for d=%s, want pass for d=%s", rep.Domain, vs[0].Err, vs[0].Domain, rep.Domain)
		}
		tampered := bytes.Replace(msg, []byte("aggregate TLS report"), []byte("aggregate TLS rep0rt"), 1)
		vs, err = dkim.VerifyWithOptions(bytes.NewReader(tampered), &dkim.VerifyOptions{LookupTXT: LookupTXT})
		if err != nil || len(vs) != 1 || vs[0].Err == nil {
			t.Errorf("%s: tampered mail verified: %v, %v", rep.Domain, vs, err)
		}
	}
}

func TestJSONShapes(t *testing.T) {
	day := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for _, rep := range Reporters {
		r := &Report{Reporter: rep, Day: day, Successful: 10,
			Failures: []Failure{{ResultType: "certificate-expired", Count: 3, ReceivingMX: "mx2.example.com"}},
			Policy:   Policy{Type: "sts", Mode: "testing", MaxAge: 86400, Domain: "example.com", MX: []string{"mx.example.com"}}}
		var doc struct {
			DateRange struct {
				Start string `json:"start-datetime"`
				End   string `json:"end-datetime"`
			} `json:"date-range"`
			Policies []struct {
				Policy  map[string]any `json:"policy"`
				Summary struct {
					Failed int64 `json:"total-failure-session-count"`
				} `json:"summary"`
			} `json:"policies"`
		}
		if err := json.Unmarshal(r.JSON(), &doc); err != nil {
			t.Fatalf("%s: JSON() is not JSON: %v", rep.Domain, err)
		}
		if doc.Policies[0].Summary.Failed != 3 {
			t.Errorf("%s: failed total = %d, want 3", rep.Domain, doc.Policies[0].Summary.Failed)
		}
		_, hasString := doc.Policies[0].Policy["policy-string"]
		_, hasMX := doc.Policies[0].Policy["mx-host"]
		switch rep.Shape {
		case ShapeMicrosoft:
			if doc.DateRange.Start != "2026-11-01T00:00:00" || hasMX {
				t.Errorf("microsoft shape: start %q, mx-host present %v; want zone-less start, no mx-host", doc.DateRange.Start, hasMX)
			}
		case ShapeMailRu:
			if doc.DateRange.End != "2026-11-02T00:00:00Z" || hasString {
				t.Errorf("mail.ru shape: end %q, policy-string present %v; want next-day end, no policy-string", doc.DateRange.End, hasString)
			}
		case ShapeGoogle:
			if !hasMX || !hasString || doc.DateRange.End != "2026-11-01T23:59:59Z" {
				t.Errorf("google shape: mx-host %v policy-string %v end %q", hasMX, hasString, doc.DateRange.End)
			}
		}
	}
}

func TestDemoMailboxIsDeterministic(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	a, b := DemoMailbox(now, "rua@example.com"), DemoMailbox(now, "rua@example.com")
	if len(a) != len(b) || len(a) < 360 {
		t.Fatalf("DemoMailbox() sizes %d and %d, want equal and at least 360", len(a), len(b))
	}
	for i := range a {
		// The DKIM signature carries the signing time (t=), nothing else may differ.
		if bytes.HasPrefix(a[i], []byte("DKIM-Signature:")) {
			a[i], b[i] = StripSignature(a[i]), StripSignature(b[i])
		}
		if !bytes.Equal(a[i], b[i]) {
			t.Fatalf("message %d differs between two runs", i)
		}
	}
}
