package rollout

import (
	"fmt"
	"time"
)

// idLayout is the id convention of RFC 8461 §3.1 practice: the UTC time of
// the change, which never collides and reads as a history.
const idLayout = "20060102T150405Z"

// maxIDLen is the longest id RFC 8461 §3.1 allows (1*32 ALPHA / DIGIT).
const maxIDLen = 32

// NewID returns the policy id for a change made at t: the UTC time as
// YYYYMMDDTHHMMSSZ.
func NewID(t time.Time) string {
	return t.UTC().Format(idLayout)
}

// ValidID reports whether id is a valid MTA-STS policy id: 1 to 32 ASCII
// letters and digits (RFC 8461 §3.1 sts-id).
func ValidID(id string) error {
	if id == "" {
		return fmt.Errorf("checking id: %w: empty", ErrInvalidID)
	}
	if len(id) > maxIDLen {
		return fmt.Errorf("checking id %q: %w: %d characters, at most %d", id, ErrInvalidID, len(id), maxIDLen)
	}
	for i := 0; i < len(id); i++ {
		if !isAlnum(id[i]) {
			return fmt.Errorf("checking id %q: %w: %q is not a letter or digit", id, ErrInvalidID, id[i])
		}
	}
	return nil
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func isDigit(c byte) bool {
	return c >= '0' && c <= '9'
}
