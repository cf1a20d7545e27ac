package main

import (
	"fmt"
	"net/url"
	"strings"
)

// databasePassword puts TLSRPT_DATABASE_PASSWORD (or the content of the
// file named by TLSRPT_DATABASE_PASSWORD_FILE) into the database URL, so
// that the password need not be part of DATABASE_URL (Docker secrets).
func databasePassword(env *Env, dbURL string) (string, error) {
	return databasePasswordFor(env, "DATABASE_URL", dbURL)
}

// readDatabaseURL is the URL of the read replica: DATABASE_READ_URL, or
// the content of the file DATABASE_READ_URL_FILE names (the URL may carry
// a password, hence the file twin), "" when neither is set. Its password
// comes from TLSRPT_DATABASE_PASSWORD(_FILE) like DATABASE_URL's, when
// set: a streaming replica has the primary's roles and passwords.
func readDatabaseURL(env *Env) (string, error) {
	u, err := secretSetting(env, "DATABASE_READ_URL")
	if err != nil || u == "" {
		return "", err
	}
	return databasePasswordFor(env, "DATABASE_READ_URL", u)
}

// databasePasswordFor is databasePassword for the URL of setting name.
func databasePasswordFor(env *Env, name, dbURL string) (string, error) {
	pw, err := secretSetting(env, "TLSRPT_DATABASE_PASSWORD")
	if err != nil || pw == "" {
		return dbURL, err
	}
	if strings.HasPrefix(dbURL, "postgres://") || strings.HasPrefix(dbURL, "postgresql://") {
		u, err := url.Parse(dbURL)
		if err != nil {
			return "", fmt.Errorf("%s: %w", name, err)
		}
		name := ""
		if u.User != nil {
			name = u.User.Username()
		}
		u.User = url.UserPassword(name, pw)
		return u.String(), nil
	}
	// key=value form: a later keyword wins in libpq's syntax.
	return dbURL + " password='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(pw) + "'", nil
}
