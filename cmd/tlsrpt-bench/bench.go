package main

import (
	"fmt"
	"hash/fnv"
	"slices"
	"time"

	"github.com/tlsrpt/tlsrpt/reports/reportgen"
)

// benchDomain is the name of the i-th seeded domain.
func benchDomain(i int) string { return fmt.Sprintf("d%04d.example", i) }

// benchHash mixes the numbers a seeded report is derived from, so that
// failures spread over domains and days without a random source: the same
// flags seed the same store.
func benchHash(parts ...int) uint32 {
	h := fnv.New32a()
	for _, p := range parts {
		fmt.Fprint(h, p, "/")
	}
	return h.Sum32()
}

// benchResultTypes are the failure kinds seeded, the frequent ones
// repeated (as the corpus shows them: mostly certificate and STARTTLS
// problems, rarely a policy fetch error).
var benchResultTypes = []string{
	"certificate-expired", "certificate-host-mismatch", "starttls-not-supported",
	"certificate-not-trusted", "validation-failure", "certificate-expired",
	"sts-policy-fetch-error", "certificate-host-mismatch",
}

// benchReport is the report one reporter sent for domain i on day: one
// sts policy in testing mode, a few hundred sessions, and k failure
// details, k from 0 to maxDetails (average maxDetails/2), in the shape of
// the reporter (reportgen).
func benchReport(i int, day time.Time, seq, maxDetails int) reportgen.Report {
	dom := benchDomain(i)
	dn := int(day.Unix() / 86400)
	rep := reportgen.Reporters[(i+dn)%len(reportgen.Reporters)]
	mx := []string{"mx1." + dom, "mx2." + dom}
	h := benchHash(i, dn, seq)
	r := reportgen.Report{
		Reporter:   rep,
		Day:        day,
		Policy:     reportgen.Policy{Type: "sts", Mode: "testing", MX: mx, MaxAge: 86400, Domain: dom, MXHosts: mx},
		Successful: int64(200 + h%800),
		Seq:        seq,
	}
	k := 0
	if maxDetails > 0 {
		k = int(h>>8) % (maxDetails + 1)
	}
	for j := range k {
		r.Failures = append(r.Failures, reportgen.Failure{
			ResultType:  benchResultTypes[(int(h>>16)+j)%len(benchResultTypes)],
			SendingIP:   fmt.Sprintf("%s.%d", rep.IPPrefix, 1+(j*37+int(h))%250),
			ReceivingMX: mx[j%2],
			ReceivingIP: fmt.Sprintf("192.0.2.%d", 1+j%2),
			Count:       int64(1 + (int(h)+j)%4),
			ReasonCode:  "X509_V_ERR_CERT_HAS_EXPIRED",
		})
	}
	return r
}

// durationStats are the percentiles of a sample of durations.
type durationStats struct {
	n             int
	p50, p95, max time.Duration
}

func percentiles(ds []time.Duration) durationStats {
	if len(ds) == 0 {
		return durationStats{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(p float64) time.Duration { return s[int(p*float64(len(s)-1)+0.5)] }
	return durationStats{n: len(s), p50: at(0.50), p95: at(0.95), max: s[len(s)-1]}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }
