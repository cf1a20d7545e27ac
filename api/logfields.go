package api

import (
	"strconv"
	"unicode/utf8"
)

// Bounds of a logged value that carries client input: a user name, an
// address from X-Forwarded-For, a path, a user agent, or an error that
// quotes one. A 5 MB user name was once logged whole.
const (
	maxLogField = 256
	maxLogError = 4 << 10 // errors keep room for a panic's first frames
)

// clip bounds a client-supplied string for the log: at most maxLogField
// bytes, cut on a character boundary, with a marker saying how much was
// cut.
func clip(s string) string { return clipN(s, maxLogField) }

// clipErr is err's text bounded like clip, with more room.
func clipErr(err error) string {
	if err == nil {
		return ""
	}
	return clipN(err.Error(), maxLogError)
}

func clipN(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…[" + strconv.Itoa(len(s)-cut) + " more bytes]"
}
