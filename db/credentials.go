package db

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"

	"golang.org/x/crypto/bcrypt"
)

// TokenPrefix starts every API token, so a leaked one is recognisable.
const TokenPrefix = "tlsrpt_"

// maxPasswordBytes is bcrypt's limit: it ignores what follows.
const maxPasswordBytes = 72

// NewSecret returns a random 256-bit secret, base64url-encoded: session
// cookies, API tokens and generated passwords.
func NewSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// NewAPIToken returns a fresh API token; store only SecretHash of it.
func NewAPIToken() string { return TokenPrefix + NewSecret() }

// HashPassword hashes a password with bcrypt, for PutUser and
// SetUserPassword.
func HashPassword(pw string) (string, error) {
	if pw == "" {
		return "", errors.New("hashing password: empty")
	}
	if len(pw) > maxPasswordBytes {
		return "", fmt.Errorf("hashing password: longer than %d bytes", maxPasswordBytes)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("hashing password: %w", err)
	}
	return string(h), nil
}
