package db

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Roles of users and API tokens.
const (
	RoleAdmin  = "admin"
	RoleViewer = "viewer"
)

// ErrNoCredential is returned when a user, session or token does not exist,
// has expired or was revoked.
var ErrNoCredential = errors.New("db: no such user, session or token")

// ErrLastAdmin is returned when a change would leave no admin account:
// nobody could then manage users or change anything from the dashboard.
var ErrLastAdmin = errors.New("db: the last admin account cannot be removed or made a viewer")

// User is a dashboard account.
type User struct {
	ID           int64
	Username     string
	PasswordHash string
	Role         string
}

// Session is a logged-in browser session.
type Session struct {
	User      User
	CSRFToken string
	ExpiresAt time.Time
}

// APIToken is a stored API token (without the token itself).
type APIToken struct {
	ID         int64
	Name       string
	Role       string
	CreatedAt  time.Time
	LastUsedAt *time.Time
	// RevokedAt is set once the token was revoked (AllAPITokens only).
	RevokedAt *time.Time
}

// SecretHash is how session cookies and API tokens are stored: SHA-256 of
// the secret. They are 256-bit random values, so a slow hash adds nothing.
func SecretHash(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// UserByName returns the user named username.
func (d *DB) UserByName(ctx context.Context, username string) (*User, error) {
	var u User
	err := d.Pool.QueryRow(ctx,
		`SELECT id, username, password_hash, role FROM users WHERE username = $1`, username).
		Scan(&u.ID, &u.Username, &u.PasswordHash, &u.Role)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNoCredential
	}
	if err != nil {
		return nil, fmt.Errorf("reading user %q: %w", username, err)
	}
	return &u, nil
}

// PutUser creates the user or, when it exists, sets its password hash and
// role.
func (d *DB) PutUser(ctx context.Context, username, passwordHash, role string) (*User, error) {
	u := User{Username: username, PasswordHash: passwordHash, Role: role}
	err := d.Pool.QueryRow(ctx, `
		INSERT INTO users (username, password_hash, role) VALUES ($1, $2, $3)
		ON CONFLICT (username) DO UPDATE SET password_hash = EXCLUDED.password_hash,
			role = EXCLUDED.role, updated_at = now()
		RETURNING id`, username, passwordHash, role).Scan(&u.ID)
	if err != nil {
		return nil, fmt.Errorf("storing user %q: %w", username, err)
	}
	return &u, nil
}

// CreateUserIfAbsent creates the user unless one of that name exists; it
// reports whether it did.
func (d *DB) CreateUserIfAbsent(ctx context.Context, username, passwordHash, role string) (bool, error) {
	tag, err := d.Pool.Exec(ctx, `
		INSERT INTO users (username, password_hash, role) VALUES ($1, $2, $3)
		ON CONFLICT (username) DO NOTHING`, username, passwordHash, role)
	if err != nil {
		return false, fmt.Errorf("creating user %q: %w", username, err)
	}
	return tag.RowsAffected() == 1, nil
}

// CreateSession stores a session for user, identified by the hash of its
// cookie value.
func (d *DB) CreateSession(ctx context.Context, tokenHash []byte, userID int64, csrf string, expires time.Time, remoteAddr string) error {
	_, err := d.Pool.Exec(ctx, `
		INSERT INTO sessions (token_hash, user_id, csrf_token, expires_at, remote_addr)
		VALUES ($1, $2, $3, $4, $5)`, tokenHash, userID, csrf, expires, remoteAddr)
	if err != nil {
		return fmt.Errorf("creating session: %w", err)
	}
	return nil
}

// SessionByHash returns the unexpired session with that cookie hash.
func (d *DB) SessionByHash(ctx context.Context, tokenHash []byte, now time.Time) (*Session, error) {
	var s Session
	err := d.Pool.QueryRow(ctx, `
		SELECT u.id, u.username, u.role, s.csrf_token, s.expires_at
		FROM sessions s JOIN users u ON u.id = s.user_id
		WHERE s.token_hash = $1 AND s.expires_at > $2`, tokenHash, now).
		Scan(&s.User.ID, &s.User.Username, &s.User.Role, &s.CSRFToken, &s.ExpiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNoCredential
	}
	if err != nil {
		return nil, fmt.Errorf("reading session: %w", err)
	}
	return &s, nil
}

// DeleteSession ends a session (logout).
func (d *DB) DeleteSession(ctx context.Context, tokenHash []byte) error {
	if _, err := d.Pool.Exec(ctx, `DELETE FROM sessions WHERE token_hash = $1`, tokenHash); err != nil {
		return fmt.Errorf("deleting session: %w", err)
	}
	return nil
}

// DeleteUserSessions ends every session of a user, e.g. after a password
// change.
func (d *DB) DeleteUserSessions(ctx context.Context, userID int64) error {
	if _, err := d.Pool.Exec(ctx, `DELETE FROM sessions WHERE user_id = $1`, userID); err != nil {
		return fmt.Errorf("deleting sessions of user %d: %w", userID, err)
	}
	return nil
}

// DeleteExpiredSessions removes sessions that expired before now and
// returns how many.
func (d *DB) DeleteExpiredSessions(ctx context.Context, now time.Time) (int64, error) {
	tag, err := d.Pool.Exec(ctx, `DELETE FROM sessions WHERE expires_at <= $1`, now)
	if err != nil {
		return 0, fmt.Errorf("deleting expired sessions: %w", err)
	}
	return tag.RowsAffected(), nil
}

// CreateAPIToken stores the hash of a new API token.
func (d *DB) CreateAPIToken(ctx context.Context, tokenHash []byte, name, role string) (int64, error) {
	var id int64
	err := d.Pool.QueryRow(ctx, `
		INSERT INTO api_tokens (token_hash, name, role) VALUES ($1, $2, $3) RETURNING id`,
		tokenHash, name, role).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("creating api token: %w", err)
	}
	return id, nil
}

// APITokenByHash returns the unrevoked token with that hash and records
// its use.
func (d *DB) APITokenByHash(ctx context.Context, tokenHash []byte) (*APIToken, error) {
	var t APIToken
	err := d.Pool.QueryRow(ctx, `
		UPDATE api_tokens SET last_used_at = now()
		WHERE token_hash = $1 AND revoked_at IS NULL
		RETURNING id, name, role, created_at, last_used_at`, tokenHash).
		Scan(&t.ID, &t.Name, &t.Role, &t.CreatedAt, &t.LastUsedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNoCredential
	}
	if err != nil {
		return nil, fmt.Errorf("reading api token: %w", err)
	}
	return &t, nil
}

// APITokens lists the unrevoked tokens, newest first (bounded: tokens are
// created by hand).
func (d *DB) APITokens(ctx context.Context) ([]APIToken, error) {
	rows, err := d.Pool.Query(ctx, `
		SELECT id, name, role, created_at, last_used_at FROM api_tokens
		WHERE revoked_at IS NULL ORDER BY id DESC LIMIT 1000`)
	if err != nil {
		return nil, fmt.Errorf("listing api tokens: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (APIToken, error) {
		var t APIToken
		err := r.Scan(&t.ID, &t.Name, &t.Role, &t.CreatedAt, &t.LastUsedAt)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("listing api tokens: %w", err)
	}
	return out, nil
}

// RevokeAPIToken revokes a token by id.
func (d *DB) RevokeAPIToken(ctx context.Context, id int64) error {
	tag, err := d.Pool.Exec(ctx, `UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL`, id)
	if err != nil {
		return fmt.Errorf("revoking api token %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("revoking api token %d: %w", id, ErrNoCredential)
	}
	return nil
}

// Users lists the accounts by name (bounded: accounts are made by hand).
func (d *DB) Users(ctx context.Context) ([]User, error) {
	rows, err := d.Pool.Query(ctx, `SELECT id, username, role FROM users ORDER BY username LIMIT 1000`)
	if err != nil {
		return nil, fmt.Errorf("listing users: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (User, error) {
		var u User
		err := r.Scan(&u.ID, &u.Username, &u.Role)
		return u, err
	})
	if err != nil {
		return nil, fmt.Errorf("listing users: %w", err)
	}
	return out, nil
}

// DeleteUser removes an account and, with it, its sessions. It refuses
// (ErrLastAdmin) to remove the only admin.
func (d *DB) DeleteUser(ctx context.Context, username string) error {
	err := d.keepingAnAdmin(ctx, username, func(tx pgx.Tx) (int64, error) {
		tag, err := tx.Exec(ctx, `DELETE FROM users WHERE username = $1`, username)
		return tag.RowsAffected(), err
	})
	if err != nil {
		return fmt.Errorf("deleting user %q: %w", username, err)
	}
	return nil
}

// SetUserRole changes an account's role. It refuses (ErrLastAdmin) to make
// the only admin a viewer.
func (d *DB) SetUserRole(ctx context.Context, username, role string) error {
	err := d.keepingAnAdmin(ctx, username, func(tx pgx.Tx) (int64, error) {
		tag, err := tx.Exec(ctx, `UPDATE users SET role = $2, updated_at = now() WHERE username = $1`, username, role)
		return tag.RowsAffected(), err
	})
	if err != nil {
		return fmt.Errorf("setting role of user %q: %w", username, err)
	}
	return nil
}

// keepingAnAdmin runs change (which touches the account username and
// returns the rows it affected) in a transaction and rolls it back when it
// took the last admin away. The admin rows are locked first, so two admins
// removing each other at once cannot both succeed. A store without any
// admin (only viewers added by the CLI) is left to EnsureAdmin.
func (d *DB) keepingAnAdmin(ctx context.Context, username string, change func(pgx.Tx) (int64, error)) error {
	return pgx.BeginFunc(ctx, d.Pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `SELECT id FROM users WHERE role = 'admin' ORDER BY id FOR UPDATE`)
		if err != nil {
			return err
		}
		before := tag.RowsAffected()
		n, err := change(tx)
		if err != nil {
			return err
		}
		if n == 0 {
			return ErrNoCredential
		}
		var after int64
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM users WHERE role = 'admin'`).Scan(&after); err != nil {
			return err
		}
		if before > 0 && after == 0 {
			return ErrLastAdmin
		}
		return nil
	})
}

// SetUserPassword sets an account's password hash; the caller ends its
// sessions as it sees fit.
func (d *DB) SetUserPassword(ctx context.Context, username, passwordHash string) (*User, error) {
	u := User{Username: username, PasswordHash: passwordHash}
	err := d.Pool.QueryRow(ctx, `UPDATE users SET password_hash = $2, updated_at = now()
		WHERE username = $1 RETURNING id, role`, username, passwordHash).Scan(&u.ID, &u.Role)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("setting password of user %q: %w", username, ErrNoCredential)
	}
	if err != nil {
		return nil, fmt.Errorf("setting password of user %q: %w", username, err)
	}
	return &u, nil
}

// DeleteOtherSessions ends every session of a user but the one with the
// cookie hash keep (the browser that changed the password) and returns
// how many.
func (d *DB) DeleteOtherSessions(ctx context.Context, userID int64, keep []byte) (int64, error) {
	tag, err := d.Pool.Exec(ctx, `DELETE FROM sessions WHERE user_id = $1 AND token_hash <> $2`, userID, keep)
	if err != nil {
		return 0, fmt.Errorf("deleting other sessions of user %d: %w", userID, err)
	}
	return tag.RowsAffected(), nil
}

// AllAPITokens lists every token, revoked ones included, newest first
// (bounded like APITokens).
func (d *DB) AllAPITokens(ctx context.Context) ([]APIToken, error) {
	rows, err := d.Pool.Query(ctx, `
		SELECT id, name, role, created_at, last_used_at, revoked_at FROM api_tokens
		ORDER BY id DESC LIMIT 1000`)
	if err != nil {
		return nil, fmt.Errorf("listing api tokens: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (APIToken, error) {
		var t APIToken
		err := r.Scan(&t.ID, &t.Name, &t.Role, &t.CreatedAt, &t.LastUsedAt, &t.RevokedAt)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("listing api tokens: %w", err)
	}
	return out, nil
}
