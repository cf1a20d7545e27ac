package ui

// PublishingForm is the "Publishing" form: how a domain's policy versions
// are published, on its settings page, or the fleet default on the
// settings page (docs/publishing.md "Settings").
type PublishingForm struct {
	// Action is the form's address; Scope is "domain" or "default".
	Action string
	Scope  string
	// Own: the domain has a setting of its own, which it can give up
	// for the fleet default.
	Own bool
	// Source says where the effective setting comes from, in words.
	Source string
	// The fields, as stored or as the admin typed them after an error.
	Policy, Record, Server, Zone, TSIGKey, TSIGAlgorithm, Credential string
	Policies, Records                                                []Option
	Algorithms                                                       []string
	// Errors holds the message of each bad field, by field name.
	Errors map[string]string
	// Secret is the line about the credential's secret; nil when the
	// setting names none.
	Secret  *SecretLine
	Updated string // "2026-12-01T09:30:00Z by alice", "" when not stored
}

// Option is one choice of a select.
type Option struct {
	Value, Label string
}

// SecretLine says whether the secret a setting names is in the server's
// environment: "secret TLSRPT_SECRET_X: set / missing in this server's
// environment".
type SecretLine struct {
	Variable string
	Present  bool
	Problem  string
}
