package reports

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"
)

// validReport is a minimal RFC 8460 report; the tests edit it with
// strings.Replace to build each refusal and quirk.
const validReport = `{
  "organization-name": "Example Org",
  "date-range": {"start-datetime": "2024-05-01T00:00:00Z", "end-datetime": "2024-05-01T23:59:59Z"},
  "contact-info": "tlsrpt@example.org",
  "report-id": "r-1",
  "policies": [{
    "policy": {"policy-type": "sts", "policy-string": ["version: STSv1", "mode: testing", "mx: mx.example.com", "max_age: 86400"],
               "policy-domain": "example.com", "mx-host": ["mx.example.com"]},
    "summary": {"total-successful-session-count": 10, "total-failure-session-count": 2},
    "failure-details": [{"result-type": "certificate-expired", "sending-mta-ip": "192.0.2.1",
      "receiving-mx-hostname": "mx.example.com", "failed-session-count": 2}]
  }]
}`

func edit(t *testing.T, old, new string) string {
	t.Helper()
	if !strings.Contains(validReport, old) {
		t.Fatalf("test bug: %q not in validReport", old)
	}
	return strings.Replace(validReport, old, new, 1)
}

func gz(t testing.TB, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestParseValid(t *testing.T) {
	for _, in := range [][]byte{[]byte(validReport), gz(t, validReport)} {
		r, js, err := ParseLimited(bytes.NewReader(in), DefaultLimits())
		if err != nil {
			t.Fatalf("ParseLimited() error %v", err)
		}
		if string(js) != validReport {
			t.Errorf("ParseLimited() json = %q, want the decompressed input", js)
		}
		want := Report{
			OrganizationName: "Example Org",
			DateRange: DateRange{
				Start: time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC),
				End:   time.Date(2024, 5, 1, 23, 59, 59, 0, time.UTC),
			},
			ContactInfo: "tlsrpt@example.org",
			ReportID:    "r-1",
		}
		if r.OrganizationName != want.OrganizationName || !r.DateRange.Start.Equal(want.DateRange.Start) ||
			!r.DateRange.End.Equal(want.DateRange.End) || r.ContactInfo != want.ContactInfo || r.ReportID != want.ReportID {
			t.Errorf("Parse() = %+v, want %+v", r, want)
		}
		if len(r.Policies) != 1 {
			t.Fatalf("Parse() policies = %d, want 1", len(r.Policies))
		}
		p := r.Policies[0]
		if p.Policy.Type != PolicySTS || p.Policy.Domain != "example.com" || len(p.Policy.Strings) != 4 ||
			len(p.Policy.MXHosts) != 1 || p.Policy.MXHosts[0] != "mx.example.com" {
			t.Errorf("Parse() policy = %+v", p.Policy)
		}
		if p.Summary != (Summary{10, 2}) {
			t.Errorf("Parse() summary = %+v, want {10 2}", p.Summary)
		}
		wantFD := FailureDetail{ResultType: ResultCertificateExpired, SendingMTAIP: "192.0.2.1", ReceivingMXHostname: "mx.example.com", FailedSessionCount: 2}
		if len(p.FailureDetails) != 1 || p.FailureDetails[0] != wantFD {
			t.Errorf("Parse() failure-details = %+v, want [%+v]", p.FailureDetails, wantFD)
		}
	}
}

// TestParseRefused has one case per refusal of docs/parse.md ("Refused"):
// each must wrap the right sentinel and name what is wrong.
func TestParseRefused(t *testing.T) {
	truncated := gz(t, validReport)
	truncated = truncated[:len(truncated)/2]
	corrupt := gz(t, validReport)
	corrupt[len(corrupt)-6] ^= 0xff // CRC-32 of the trailer
	tests := []struct {
		name   string
		in     []byte
		want   error
		reason string
	}{
		{"missing report-id", []byte(edit(t, `"report-id": "r-1",`, "")), ErrMalformed, "report-id missing"},
		{"empty report-id", []byte(edit(t, `"report-id": "r-1",`, `"report-id": " ",`)), ErrMalformed, "report-id missing"},
		{"missing organization-name", []byte(edit(t, `"organization-name": "Example Org",`, "")), ErrMalformed, "organization-name missing"},
		{"missing date-range", []byte(edit(t, `"date-range": {"start-datetime": "2024-05-01T00:00:00Z", "end-datetime": "2024-05-01T23:59:59Z"},`, "")), ErrMalformed, "date-range missing"},
		{"missing start", []byte(edit(t, `"start-datetime": "2024-05-01T00:00:00Z", `, "")), ErrMalformed, "date-range.start-datetime missing"},
		{"missing end", []byte(edit(t, `, "end-datetime": "2024-05-01T23:59:59Z"`, "")), ErrMalformed, "date-range.end-datetime missing"},
		{"bad datetime", []byte(edit(t, `"2024-05-01T00:00:00Z"`, `"yesterday"`)), ErrMalformed, `start-datetime: not an RFC 3339 datetime: "yesterday"`},
		{"end before start", []byte(edit(t, `"2024-05-01T23:59:59Z"`, `"2024-04-30T23:59:59Z"`)), ErrMalformed, "end 2024-04-30T23:59:59Z before start 2024-05-01T00:00:00Z"},
		{"missing policies", []byte(edit(t, `"policies": [`, `"other": [`)), ErrMalformed, "policies missing"},
		{"null policies", []byte(`{"organization-name":"o","report-id":"r","date-range":{"start-datetime":"2024-05-01T00:00:00Z","end-datetime":"2024-05-02T00:00:00Z"},"policies":null}`), ErrMalformed, "policies missing"},
		{"negative count", []byte(edit(t, `"total-successful-session-count": 10`, `"total-successful-session-count": -10`)), ErrMalformed, "policies[0].summary.total-successful-session-count is negative: -10"},
		{"fractional count", []byte(edit(t, `"total-failure-session-count": 2`, `"total-failure-session-count": 2.5`)), ErrMalformed, "policies[0].summary.total-failure-session-count is not an integer: 2.5"},
		{"exponent count", []byte(edit(t, `"failed-session-count": 2`, `"failed-session-count": 2e3`)), ErrMalformed, "failure-details[0].failed-session-count is not an integer: 2e3"},
		{"string count", []byte(edit(t, `"total-failure-session-count": 2`, `"total-failure-session-count": "two"`)), ErrMalformed, `total-failure-session-count is not an integer: "two"`},
		{"missing count", []byte(edit(t, `, "total-failure-session-count": 2`, "")), ErrMalformed, "policies[0].summary.total-failure-session-count missing"},
		{"missing summary", []byte(edit(t, `"summary": {"total-successful-session-count": 10, "total-failure-session-count": 2},`, "")), ErrMalformed, "policies[0].summary missing"},
		{"missing policy-type", []byte(edit(t, `"policy-type": "sts", `, "")), ErrMalformed, "policies[0].policy.policy-type missing"},
		{"missing policy-domain", []byte(edit(t, `"policy-domain": "example.com", `, "")), ErrMalformed, "policies[0].policy.policy-domain missing"},
		{"missing result-type", []byte(edit(t, `"result-type": "certificate-expired", `, "")), ErrMalformed, "failure-details[0].result-type missing"},
		{"mx-host number", []byte(edit(t, `"mx-host": ["mx.example.com"]`, `"mx-host": 7`)), ErrMalformed, "want a string or a list of strings"},
		{"json array", []byte(`[{"report-id": "r"}]`), ErrMalformed, "not a JSON object"},
		{"dmarc-like object", []byte(`{"feedback": {"report_metadata": {"org_name": "x"}}}`), ErrMalformed, "organization-name missing"},
		{"not json", []byte("hello, this is not a report"), ErrMalformed, "not a JSON object"},
		{"broken json", []byte(validReport[:len(validReport)-20]), ErrMalformed, "decoding json"},
		{"empty", nil, ErrMalformed, "empty input"},
		{"truncated gzip", truncated, ErrMalformed, "decompressing report"},
		{"corrupt gzip", corrupt, ErrMalformed, "decompressing report: gzip: invalid checksum"},
		{"gzip magic only", []byte{0x1f, 0x8b}, ErrMalformed, "reading gzip header"},
		{"json too deep", []byte(`{"policies":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`), ErrTooLarge, "json nested deeper than 32 levels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Parse(bytes.NewReader(tt.in))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Parse() = %+v, %v; want error wrapping %v", r, err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("Parse() error %q does not say %q", err, tt.reason)
			}
			if r != nil {
				t.Errorf("Parse() report = %+v with error", r)
			}
		})
	}
}

// TestParseQuirks has one case per real-world deviation tolerated.
func TestParseQuirks(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		check func(*Report) string // "" when fine, else what is wrong
	}{
		{"zone-less timestamps (Microsoft)", edit(t, `"2024-05-01T00:00:00Z"`, `"2024-05-01T00:00:00"`), func(r *Report) string {
			if !r.DateRange.Start.Equal(time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)) {
				return "start " + r.DateRange.Start.String()
			}
			return ""
		}},
		{"fractional seconds and offset", edit(t, `"2024-05-01T00:00:00Z"`, `"2024-05-01T02:00:00.123+02:00"`), func(r *Report) string {
			if s := r.DateRange.Start; !s.Equal(time.Date(2024, 5, 1, 0, 0, 0, 123e6, time.UTC)) || s.Location() != time.UTC {
				return "start " + s.String()
			}
			return ""
		}},
		{"+00:00 offset", edit(t, `"2024-05-01T23:59:59Z"`, `"2024-05-01T23:59:59+00:00"`), func(r *Report) string {
			if e := r.DateRange.End; !e.Equal(time.Date(2024, 5, 1, 23, 59, 59, 0, time.UTC)) {
				return "end " + e.String()
			}
			return ""
		}},
		{"lowercase t and z", edit(t, `"2024-05-01T00:00:00Z"`, `"2024-05-01t00:00:00z"`), func(r *Report) string {
			if !r.DateRange.Start.Equal(time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)) {
				return "start " + r.DateRange.Start.String()
			}
			return ""
		}},
		{"contact-info null (Stalwart)", edit(t, `"tlsrpt@example.org"`, `null`), func(r *Report) string {
			if r.ContactInfo != "" {
				return "contact-info " + r.ContactInfo
			}
			return ""
		}},
		{"contact-info absent", edit(t, `"contact-info": "tlsrpt@example.org",`, ``), func(r *Report) string {
			if r.ContactInfo != "" {
				return "contact-info " + r.ContactInfo
			}
			return ""
		}},
		{"mx-host string (RFC example)", edit(t, `"mx-host": ["mx.example.com"]`, `"mx-host": "*.example.com"`), func(r *Report) string {
			if h := r.Policies[0].Policy.MXHosts; len(h) != 1 || h[0] != "*.example.com" {
				return "mx-host " + strings.Join(h, ",")
			}
			return ""
		}},
		{"mx-host and policy-string absent", edit(t, `"policy-string": ["version: STSv1", "mode: testing", "mx: mx.example.com", "max_age: 86400"],
               "policy-domain": "example.com", "mx-host": ["mx.example.com"]`, `"policy-domain": "example.com"`), func(r *Report) string {
			p := r.Policies[0].Policy
			if p.MXHosts == nil || len(p.MXHosts) != 0 || p.Strings == nil || len(p.Strings) != 0 {
				return "want empty non-nil lists"
			}
			return ""
		}},
		{"tlsa policy-string JSON in one string (Microsoft)", edit(t, `["version: STSv1", "mode: testing", "mx: mx.example.com", "max_age: 86400"]`, `["[\"3 1 1 AB\",\"3 1 1 CD\"]"]`), func(r *Report) string {
			if s := r.Policies[0].Policy.Strings; len(s) != 1 || s[0] != `["3 1 1 AB","3 1 1 CD"]` {
				return "policy-string " + strings.Join(s, "|")
			}
			return ""
		}},
		{"additional-info-uri and failure-error-code", edit(t, `"failed-session-count": 2}`, `"failed-session-count": 2, "additional-info-uri": "https://x.example/i", "failure-error-code": "E42"}`), func(r *Report) string {
			d := r.Policies[0].FailureDetails[0]
			if d.AdditionalInformation != "https://x.example/i" || d.FailureReasonCode != "E42" {
				return "detail " + d.AdditionalInformation + " " + d.FailureReasonCode
			}
			return ""
		}},
		{"RFC names win over the alternatives", edit(t, `"failed-session-count": 2}`, `"failed-session-count": 2, "additional-information": "a", "additional-info-uri": "b", "failure-reason-code": "c", "failure-error-code": "d"}`), func(r *Report) string {
			d := r.Policies[0].FailureDetails[0]
			if d.AdditionalInformation != "a" || d.FailureReasonCode != "c" {
				return "detail " + d.AdditionalInformation + " " + d.FailureReasonCode
			}
			return ""
		}},
		{"numeric failure-reason-code", edit(t, `"failed-session-count": 2}`, `"failed-session-count": 2, "failure-reason-code": 421}`), func(r *Report) string {
			if c := r.Policies[0].FailureDetails[0].FailureReasonCode; c != "421" {
				return "code " + c
			}
			return ""
		}},
		{"unknown types kept", edit(t, `"policy-type": "sts"`, `"policy-type": "future-type"`), func(r *Report) string {
			if r.Policies[0].Policy.Type != "future-type" {
				return "type " + r.Policies[0].Policy.Type
			}
			return ""
		}},
		{"unknown result type kept", edit(t, `"certificate-expired"`, `"Testing"`), func(r *Report) string {
			if r.Policies[0].FailureDetails[0].ResultType != "Testing" {
				return "result " + r.Policies[0].FailureDetails[0].ResultType
			}
			return ""
		}},
		{"details not adding up (Mail.ru)", edit(t, `"total-failure-session-count": 2`, `"total-failure-session-count": 1`), func(r *Report) string {
			if s := r.Policies[0].Summary; s.TotalFailureSessionCount != 1 {
				return "totals derived from details"
			}
			return ""
		}},
		{"empty arrays (Stalwart)", edit(t, `"failure-details": [{"result-type": "certificate-expired", "sending-mta-ip": "192.0.2.1",
      "receiving-mx-hostname": "mx.example.com", "failed-session-count": 2}]`, `"failure-details": []`), func(r *Report) string {
			if len(r.Policies[0].FailureDetails) != 0 {
				return "details"
			}
			return ""
		}},
		{"no failure-details key", edit(t, `,
    "failure-details": [{"result-type": "certificate-expired", "sending-mta-ip": "192.0.2.1",
      "receiving-mx-hostname": "mx.example.com", "failed-session-count": 2}]`, ``), func(r *Report) string {
			if fd := r.Policies[0].FailureDetails; fd == nil || len(fd) != 0 {
				return "want empty non-nil details"
			}
			return ""
		}},
		{"empty policies list", `{"organization-name":"o","report-id":"r","date-range":{"start-datetime":"2024-05-01T00:00:00Z","end-datetime":"2024-05-02T00:00:00Z"},"policies":[]}`, func(r *Report) string {
			if len(r.Policies) != 0 {
				return "policies"
			}
			return ""
		}},
		{"byte order mark", "\ufeff" + validReport, func(r *Report) string { return "" }},
		{"unknown fields ignored", edit(t, `"report-id": "r-1",`, `"report-id": "r-1", "x-extension": {"a": [1, 2]},`), func(r *Report) string { return "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, in := range [][]byte{[]byte(tt.in), gz(t, tt.in)} {
				r, err := Parse(bytes.NewReader(in))
				if err != nil {
					t.Fatalf("Parse() error %v", err)
				}
				if msg := tt.check(r); msg != "" {
					t.Errorf("Parse() = %+v: %s", r, msg)
				}
			}
		})
	}
}

// TestParseGzipBomb checks that a report decompressing far past the limit
// stops with ErrTooLarge. BenchmarkGzipBomb shows the time and memory.
func TestParseGzipBomb(t *testing.T) {
	bomb := gzipBomb(t, 32<<20)
	lim := DefaultLimits()
	lim.MaxReportBytes = 1 << 20
	_, _, err := ParseLimited(bytes.NewReader(bomb), lim)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("ParseLimited(bomb) error %v, want ErrTooLarge", err)
	}
	// The same applies to plain JSON over the limit.
	big := `{"organization-name":"` + strings.Repeat("a", 2<<20) + `"}`
	if _, _, err := ParseLimited(strings.NewReader(big), lim); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("ParseLimited(big json) error %v, want ErrTooLarge", err)
	}
}

// TestParseGzipBombMemory checks that refusing a bomb costs little memory:
// past gunzipInMemory the output is inflated into nothing.
func TestParseGzipBombMemory(t *testing.T) {
	bomb := gzipBomb(t, 64<<20)
	lim := DefaultLimits()
	lim.MaxReportBytes = 16 << 20
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _, err := ParseLimited(bytes.NewReader(bomb), lim)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("ParseLimited(bomb) error %v, want ErrTooLarge", err)
	}
	// Buffering the output would cost the 16 MiB limit.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 2<<20+uint64(len(bomb)) {
		t.Errorf("refusing a 64 MiB bomb of %d bytes allocated %d bytes, want under 2 MiB more", len(bomb), alloc)
	}
}

// TestParseGzipLyingTrailer: a trailer announcing more than the limit on
// a small stream is a corrupt gzip, not a large one.
func TestParseGzipLyingTrailer(t *testing.T) {
	z := gz(t, validReport)
	copy(z[len(z)-4:], []byte{0xff, 0xff, 0xff, 0x7f})
	_, _, err := ParseLimited(bytes.NewReader(z), Limits{MaxReportBytes: 1 << 20})
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("ParseLimited(lying trailer) error %v, want ErrMalformed", err)
	}
}

// TestParseGzipBombLyingTrailer: a bomb whose trailer (ISIZE) claims a
// few bytes is refused as too large, naming the limit, for little memory:
// the claim sizes nothing. Trusting it once let 25 such bombs of 1 MB
// take a server past 3.5 GB.
func TestParseGzipBombLyingTrailer(t *testing.T) {
	bomb := lyingBomb(t, 64<<20)
	lim := DefaultLimits()
	lim.MaxReportBytes = 16 << 20
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _, err := ParseLimited(bytes.NewReader(bomb), lim)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "decompressed report exceeds 16777216 bytes") {
		t.Errorf("ParseLimited(lying bomb) error %v, want ErrTooLarge naming the limit", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 2<<20+uint64(len(bomb)) {
		t.Errorf("refusing a 64 MiB bomb claiming 100 bytes allocated %d bytes, want under 2 MiB more than its %d", alloc, len(bomb))
	}
	// A stream just under the limit is inflated whole, whatever its
	// trailer claims; then the inflater finds the lie.
	_, _, err = ParseLimited(bytes.NewReader(lyingBomb(t, 8<<20)), lim)
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("ParseLimited(lying 8 MiB stream) error %v, want ErrMalformed", err)
	}
}

// lyingBomb is gzipBomb(n) whose trailer claims 100 bytes.
func lyingBomb(t testing.TB, n int) []byte {
	t.Helper()
	b := gzipBomb(t, n)
	binary.LittleEndian.PutUint32(b[len(b)-4:], 100)
	return b
}

// gzipBomb compresses n bytes of spaces after "{".
func gzipBomb(t testing.TB, n int) []byte {
	t.Helper()
	var b bytes.Buffer
	zw, err := gzip.NewWriterLevel(&b, gzip.BestSpeed)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write([]byte("{"))
	chunk := bytes.Repeat([]byte(" "), 1<<16)
	for i := 0; i < n/len(chunk); i++ {
		if _, err := zw.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestIsReportData(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"\x1f\x8b\x08", true},
		{"  \n{\"a\":1}", true},
		{"\ufeff{", true},
		{"From: a@b\r\n", false},
		{"[", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := IsReportData([]byte(tt.in)); got != tt.want {
			t.Errorf("IsReportData(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestCheckJSONDepth(t *testing.T) {
	tests := []struct {
		in   string
		ok   bool
		note string
	}{
		{`{"a":[1,{"b":2}]}`, true, "depth 3"},
		{`{"a":[[[1]]]}`, false, "depth 4"},
		{`{"a":"[[[[[[\"[[[["}`, true, "brackets and an escaped quote inside a string"},
		{`{"a":"x\\","b":[[[1]]]}`, false, "escaped backslash ends the string"},
		{`{"a":"x\\\"[[[[","b":1}`, true, "escaped backslash then escaped quote"},
		{`{"a":"unterminated [[[[[`, true, "left to the decoder"},
	}
	for _, tt := range tests {
		err := checkJSONDepth([]byte(tt.in), 3)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrTooLarge)) {
			t.Errorf("checkJSONDepth(%s) = %v, want ok %v (%s)", tt.in, err, tt.ok, tt.note)
		}
	}
}
