// Package pubconf turns a stored publishing setting (db.Publishing) into
// what publishes a domain's policy versions: whether tlsrpt hosts the
// policy file, and the rollout.RecordPublisher of its TXT record with the
// secret read from this process's environment by the name the setting
// holds (docs/publishing.md "Settings"). It also imports the environment
// variables that configured publishing before the settings existed.
package pubconf

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/rollout"
)

// ErrMissingSecret is wrapped when the secret a setting names is not in
// this process's environment; the message names the variable to set.
var ErrMissingSecret = errors.New("pubconf: secret missing")

// SecretVar is the environment variable that holds the secret of
// credential name: TLSRPT_SECRET_<NAME>, or the file named by the same
// variable with _FILE appended.
func SecretVar(name string) string { return "TLSRPT_SECRET_" + strings.ToUpper(name) }

// legacySecrets are the variables that held secrets before the settings:
// still read for the credential names the import gives them, so that an
// installation keeps its secret where it is.
var legacySecrets = map[string]string{
	"TSIG":       "TLSRPT_TSIG_SECRET",
	"CLOUDFLARE": "TLSRPT_CLOUDFLARE_TOKEN",
	"HETZNER":    "TLSRPT_HETZNER_TOKEN",
}

// Secret reads the secret of credential name from getenv: the variable
// SecretVar(name), or the file named by SecretVar(name)+"_FILE" (not
// both); for the names of the old variables (TSIG, CLOUDFLARE, HETZNER)
// those are read when the new ones are unset. from is the variable the
// value came from, or the one to set when it is missing (the error then
// wraps ErrMissingSecret and names it).
func Secret(name string, getenv func(string) string) (value, from string, err error) {
	v := SecretVar(name)
	value, from, err = secretVar(v, getenv)
	if err != nil || value != "" {
		return value, from, err
	}
	if old, ok := legacySecrets[strings.ToUpper(name)]; ok {
		if value, from, err = secretVar(old, getenv); err != nil || value != "" {
			return value, from, err
		}
	}
	return "", v, fmt.Errorf("%w: set %s (or %s_FILE) in this process's environment: the setting names the credential %s", ErrMissingSecret, v, v, strings.ToUpper(name))
}

// secretVar reads name or the file named by name_FILE; value is "" when
// neither is set.
func secretVar(name string, getenv func(string) string) (value, from string, err error) {
	v, file := getenv(name), getenv(name+"_FILE")
	if v != "" && file != "" {
		return "", name, fmt.Errorf("%s and %s_FILE are both set: use one", name, name)
	}
	if file == "" {
		return v, name, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", name + "_FILE", fmt.Errorf("reading %s_FILE: %w", name, err)
	}
	value = strings.TrimRight(string(b), "\r\n")
	if value == "" {
		return "", name + "_FILE", fmt.Errorf("%w: the file of %s_FILE is empty", ErrMissingSecret, name)
	}
	return value, name + "_FILE", nil
}

// SecretState says whether the secret a setting names is present in this
// process's environment, for the page and the CLI: Variable is where it is
// read from (or should be set), Present whether it is there, Problem why
// it cannot be read when it is set but unusable (both NAME and NAME_FILE
// set, the file unreadable); a secret simply not set has no Problem.
type SecretState struct {
	Credential string `json:"credential"`
	Variable   string `json:"variable"`
	Present    bool   `json:"present"`
	Problem    string `json:"problem,omitempty"`
}

// Check returns the state of the setting's secret; ok is false when the
// setting names none.
func Check(p db.Publishing, getenv func(string) string) (s SecretState, ok bool) {
	if p.Credential == "" {
		return s, false
	}
	_, from, err := Secret(p.Credential, getenv)
	s = SecretState{Credential: p.Credential, Variable: from, Present: err == nil}
	if err != nil && !errors.Is(err, ErrMissingSecret) {
		s.Problem = err.Error()
	}
	return s, true
}

// cloudflareZoneID is what a Cloudflare zone id looks like (32 hex
// digits); a zone setting of that form is taken as the id, which saves
// the lookup by name.
var cloudflareZoneID = regexp.MustCompile(`^[0-9a-f]{32}$`)

// Resolve builds the publishing of a setting: hostPolicy when tlsrpt
// serves the policy file, and the record publisher (nil for the manual
// method) with its secret from getenv.
//
// A secret that is missing or unreadable is not fatal: err wraps
// ErrMissingSecret (or the read error) and names the variable, and
// records is still the setting's method, failing every push with err, so
// that a caller that publishes with it shows err as the cause of the TXT
// step instead of falling back to "set it by hand". Any other error (a
// setting that does not validate) leaves records nil.
func Resolve(p db.Publishing, getenv func(string) string) (hostPolicy bool, records rollout.RecordPublisher, err error) {
	p.Normalize()
	if err := p.Validate(); err != nil {
		return false, nil, fmt.Errorf("publishing setting of %s: %w", p.Domain, err)
	}
	hostPolicy = p.Policy == rollout.PolicyHosted
	secret := ""
	if p.Credential != "" {
		if secret, _, err = Secret(p.Credential, getenv); err != nil {
			return hostPolicy, &unavailable{method: p.Record, err: err}, err
		}
	}
	switch p.Record {
	case rollout.RecordRFC2136:
		return hostPolicy, &rollout.DNSUpdate{Server: p.Server, Zone: p.Zone, KeyName: p.TSIGKey, Algorithm: p.TSIGAlgorithm, Secret: secret}, nil
	case rollout.RecordCloudflare:
		cf := &rollout.Cloudflare{Token: secret, Zone: p.Zone}
		if cloudflareZoneID.MatchString(p.Zone) {
			cf.Zone, cf.ZoneID = "", p.Zone
		}
		return hostPolicy, cf, nil
	case rollout.RecordHetzner:
		return hostPolicy, &rollout.Hetzner{Token: secret, Zone: p.Zone}, nil
	}
	return hostPolicy, nil, nil
}

// unavailable is the publisher of a setting whose secret is missing:
// every push fails with why, naming the variable to set.
type unavailable struct {
	method string
	err    error
}

// Unavailable returns a record publisher of method whose every push fails
// with err: what Resolve returns for a missing secret.
func Unavailable(method string, err error) rollout.RecordPublisher {
	return &unavailable{method: method, err: err}
}

func (u *unavailable) Method() string { return u.method }

func (u *unavailable) PublishTXT(context.Context, string, string) error {
	return fmt.Errorf("%w: %w", rollout.ErrPublish, u.err)
}

// View is a domain's effective setting as the CLI, the API and the page
// show it: the setting (Source says where it comes from) and whether the
// secret it names is in this process's environment.
type View struct {
	// Domain is the domain asked about, or db.DefaultPublishing.
	Domain  string        `json:"domain"`
	Setting db.Publishing `json:"setting"`
	// Secret is nil when the setting names no credential.
	Secret *SecretState `json:"secret"`
}

// Describe returns the view of domain's effective setting p.
func Describe(domain string, p db.Publishing, getenv func(string) string) View {
	v := View{Domain: domain, Setting: p}
	if s, ok := Check(p, getenv); ok {
		v.Secret = &s
	}
	return v
}

// ForDomain resolves the effective setting of domain (its own, else the
// fleet default, else the built-in one) with the secrets of getenv: the
// body of the publisher's per-domain hook. Errors are Resolve's, plus a
// failure to read the setting.
func ForDomain(ctx context.Context, d *db.DB, domain string, getenv func(string) string) (hostPolicy bool, records rollout.RecordPublisher, err error) {
	p, err := d.Publishing(ctx, domain)
	if err != nil {
		return false, nil, err
	}
	return Resolve(p, getenv)
}
