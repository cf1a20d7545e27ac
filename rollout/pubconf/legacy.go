package pubconf

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/rollout"
)

// LegacyVars are the environment variables that said how to publish
// before the settings were stored, each process reading its own. They are
// imported once into the fleet default (ImportLegacy) and ignored from
// then on. The secrets of those days (TLSRPT_TSIG_SECRET,
// TLSRPT_CLOUDFLARE_TOKEN, TLSRPT_HETZNER_TOKEN, each with _FILE) are not
// among them: they stay the secrets of the credentials TSIG, CLOUDFLARE
// and HETZNER (Secret).
var LegacyVars = []string{
	"TLSRPT_HOST_POLICY", "TLSRPT_DNS_UPDATE_SERVER", "TLSRPT_DNS_UPDATE_ZONE", "TLSRPT_TSIG_KEY",
	"TLSRPT_TSIG_ALGORITHM", "TLSRPT_DNS_PROVIDER", "TLSRPT_DNS_PROVIDER_ZONE", "TLSRPT_CLOUDFLARE_ZONE_ID",
}

// ImportAction is the audit action of the import.
const ImportAction = "settings.publishing.imported"

// FromLegacy reads the old variables into a setting (Domain
// db.DefaultPublishing); vars lists those that are set, none meaning there
// is nothing to import. The error names the variable at fault.
func FromLegacy(getenv func(string) string) (p db.Publishing, vars []string, err error) {
	for _, v := range LegacyVars {
		if getenv(v) != "" {
			vars = append(vars, v)
		}
	}
	p = db.BuiltInPublishing()
	p.Source = ""
	if len(vars) == 0 {
		return p, nil, nil
	}
	switch strings.ToLower(getenv("TLSRPT_HOST_POLICY")) {
	case "", "0", "false", "no":
	case "1", "true", "yes":
		p.Policy = rollout.PolicyHosted
	default:
		return p, vars, fmt.Errorf("TLSRPT_HOST_POLICY: %q is not a boolean (use 1 or 0)", getenv("TLSRPT_HOST_POLICY"))
	}
	server, provider := getenv("TLSRPT_DNS_UPDATE_SERVER"), strings.ToLower(getenv("TLSRPT_DNS_PROVIDER"))
	switch {
	case server != "" && provider != "":
		return p, vars, fmt.Errorf("TLSRPT_DNS_UPDATE_SERVER and TLSRPT_DNS_PROVIDER both set: choose one way to publish the record")
	case server != "":
		p.Record, p.Server, p.Zone = rollout.RecordRFC2136, server, getenv("TLSRPT_DNS_UPDATE_ZONE")
		p.TSIGKey, p.TSIGAlgorithm = getenv("TLSRPT_TSIG_KEY"), getenv("TLSRPT_TSIG_ALGORITHM")
		if p.TSIGKey != "" {
			p.Credential = "TSIG"
		}
	case provider == rollout.RecordCloudflare:
		p.Record, p.Zone, p.Credential = rollout.RecordCloudflare, getenv("TLSRPT_DNS_PROVIDER_ZONE"), "CLOUDFLARE"
		if id := getenv("TLSRPT_CLOUDFLARE_ZONE_ID"); id != "" {
			p.Zone = id
		}
	case provider == rollout.RecordHetzner:
		p.Record, p.Zone, p.Credential = rollout.RecordHetzner, getenv("TLSRPT_DNS_PROVIDER_ZONE"), "HETZNER"
	case provider != "":
		return p, vars, fmt.Errorf("TLSRPT_DNS_PROVIDER: %q is not cloudflare or hetzner", provider)
	}
	p.Normalize()
	if err := p.Validate(); err != nil {
		return p, vars, fmt.Errorf("the publishing variables %s: %w", strings.Join(vars, ", "), err)
	}
	return p, vars, nil
}

// ImportLegacy runs at the start of tlsrpt migrate and serve. When the old
// variables are set and no fleet default is stored yet, it stores them as
// the fleet default, once (of processes starting together exactly one
// does), audited as ImportAction by actor, and logs it; when a fleet
// default is stored already, it logs one warning that the variables are
// ignored and which setting wins. imported says whether this call
// imported them.
func ImportLegacy(ctx context.Context, d *db.DB, getenv func(string) string, actor string, log *slog.Logger) (imported bool, err error) {
	var vars []string
	for _, v := range LegacyVars {
		if getenv(v) != "" {
			vars = append(vars, v)
		}
	}
	if len(vars) == 0 {
		return false, nil
	}
	ignored := func() {
		log.WarnContext(ctx, "Publishing variables in the environment are ignored: the stored fleet default publishing setting wins",
			"variables", strings.Join(vars, ","), "setting", "tlsrpt publishing --default")
	}
	cur, err := d.Publishing(ctx, db.DefaultPublishing)
	if err != nil {
		return false, err
	}
	if cur.Source == db.PublishingFromDefault {
		ignored()
		return false, nil
	}
	p, _, err := FromLegacy(getenv)
	if err != nil {
		return false, err
	}
	detail := p.AuditDetail()
	detail["variables"] = vars
	ok, err := d.ImportDefaultPublishing(ctx, p, db.AuditEntry{Actor: actor, Action: ImportAction, Detail: detail})
	if err != nil {
		return false, err
	}
	if !ok {
		ignored()
		return false, nil
	}
	log.InfoContext(ctx, "Imported the publishing variables into the fleet default publishing setting; from now on they are ignored",
		"variables", strings.Join(vars, ","), "policy", p.Policy, "record", p.Record, "credential", p.Credential,
		"setting", "tlsrpt publishing --default")
	return true, nil
}
