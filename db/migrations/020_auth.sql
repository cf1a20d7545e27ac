-- Dashboard accounts, browser sessions and API tokens (docs/dashboard.md).
-- Secrets are never stored: passwords as bcrypt hashes, session cookies
-- and API tokens as SHA-256 of the random value handed out.
CREATE TABLE users (
	id            bigserial PRIMARY KEY,
	username      text NOT NULL UNIQUE CHECK (length(username) BETWEEN 1 AND 64),
	password_hash text NOT NULL,
	role          text NOT NULL CHECK (role IN ('admin', 'viewer')),
	created_at    timestamptz NOT NULL DEFAULT now(),
	updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sessions (
	token_hash  bytea PRIMARY KEY,
	user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	csrf_token  text NOT NULL,
	created_at  timestamptz NOT NULL DEFAULT now(),
	expires_at  timestamptz NOT NULL,
	remote_addr text NOT NULL DEFAULT ''
);
CREATE INDEX sessions_expires_at ON sessions (expires_at);
CREATE INDEX sessions_user_id ON sessions (user_id);

CREATE TABLE api_tokens (
	id           bigserial PRIMARY KEY,
	token_hash   bytea NOT NULL UNIQUE,
	name         text NOT NULL DEFAULT '' CHECK (length(name) <= 200),
	role         text NOT NULL CHECK (role IN ('admin', 'viewer')),
	created_at   timestamptz NOT NULL DEFAULT now(),
	last_used_at timestamptz,
	revoked_at   timestamptz
);
