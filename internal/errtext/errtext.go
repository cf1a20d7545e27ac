// Package errtext turns errors into the sentences people read: without
// the package names that sentinel errors carry for programmers.
package errtext

import (
	"errors"
	"strings"
)

// prefixes are the package names the sentinels of this module start with.
var prefixes = []string{"api: ", "db: ", "publish: ", "pubconf: ", "rollout: "}

// Plain is err's message without the package prefixes ("db: ", "publish:
// ", ...) at the start or after a wrapping ": ". errors.Is still works on
// err itself.
func Plain(err error) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	for _, prefix := range prefixes {
		msg = strings.TrimPrefix(msg, prefix)
		msg = strings.ReplaceAll(msg, ": "+prefix, ": ")
	}
	return msg
}

// Is reports whether err is one of targets.
func Is(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}
