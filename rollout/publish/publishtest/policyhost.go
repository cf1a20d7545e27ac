package publishtest

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/tlsrpt/tlsrpt/db"
)

// HostedOrTesting is a policy host for the tests that need one without
// tlsrpt's own (publish.PolicyFile): for the domain of the request's host
// (mta-sts.<domain>) it serves the policy tlsrpt hosts for it, else
// testing(domain), the policy the domain published before tlsrpt.
func HostedOrTesting(d *db.DB, testing func(domain string) string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.Host)
		if err != nil {
			host = r.Host
		}
		domain := strings.TrimPrefix(host, "mta-sts.")
		body := testing(domain)
		v, err := d.HostedPolicy(r.Context(), domain)
		switch {
		case err == nil:
			body = v.Body
		case !errors.Is(err, db.ErrNotFound):
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, body)
	}
}
