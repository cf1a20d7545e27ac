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
	pw, err := secretSetting(env, "TLSRPT_DATABASE_PASSWORD")
	if err != nil || pw == "" {
		return dbURL, err
	}
	if strings.HasPrefix(dbURL, "postgres://") || strings.HasPrefix(dbURL, "postgresql://") {
		u, err := url.Parse(dbURL)
		if err != nil {
			return "", fmt.Errorf("DATABASE_URL: %w", err)
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
