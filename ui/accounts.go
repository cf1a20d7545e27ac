package ui

// Page structs of the settings pages that manage one domain, the accounts,
// the API tokens and one's own password.

// DomainSettingsPage is one domain's thresholds form and, in its own
// section, the domain's removal (which wants the name typed again).
type DomainSettingsPage struct {
	Layout
	DomainSettings
	// RemoveError says why the last removal was refused ("" when none
	// was).
	RemoveError string
	// Publishing is how the domain is published.
	Publishing PublishingForm
}

// DomainLink is one domain in the settings index.
type DomainLink struct {
	Domain string
}

// UsersPage lists the dashboard accounts with the admin's forms.
type UsersPage struct {
	Layout
	Users []UserRow
	// Shown is a password to show once: the generated one of an account
	// just added, or a reset one. ShownFor names its account.
	Shown    string
	ShownFor string
	// MinPassword is the shortest password the forms take.
	MinPassword int
}

// UserRow is one account.
type UserRow struct {
	Name string
	Role string
	// Self is the account of the admin looking: it cannot be removed.
	Self bool
}

// TokensPage lists the API tokens, revoked ones included.
type TokensPage struct {
	Layout
	Tokens []TokenRow
	// Created is a token just made, shown on this one page and never
	// again (the store keeps its SHA-256 only); CreatedID is its id.
	Created   string
	CreatedID int64
}

// TokenRow is one API token (its secret is not stored).
type TokenRow struct {
	ID       int64
	Name     string
	Role     string
	Created  string
	LastUsed string // "" when never used
	Revoked  string // "" while active
}

// AccountPage is one's own account: the password form.
type AccountPage struct {
	Layout
	// Token says the caller is an API token, which has no password.
	Token       bool
	Error       string
	MinPassword int
}
