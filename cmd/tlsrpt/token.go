package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
)

func init() {
	register(command{name: "token", summary: "create, list or revoke API tokens for scripts", run: runToken})
}

// runToken is "tlsrpt token create|list|revoke" (docs/cli.md): API tokens for
// the JSON API (Authorization: Bearer). A token is printed once, at
// creation; the store keeps only its SHA-256.
func runToken(ctx context.Context, env *Env, args []string) int {
	verb, fs, dbURL, usage, code, ok := verbCommand(env, "token", []string{
		"usage: tlsrpt token create --role admin|viewer [--name NAME] [--db URL]",
		"       tlsrpt token list [--db URL]",
		"       tlsrpt token revoke ID [--db URL]",
	}, args)
	if !ok {
		return code
	}
	role := fs.String("role", "", "admin (may change everything) or viewer (read only)")
	name := fs.String("name", "", "a note saying what the token is for")
	// Flags may come before or after the id.
	pos, code, ok := parseInterspersed(fs, args[1:])
	if !ok {
		return code
	}
	var id int64
	switch verb {
	case "create":
		if *role != db.RoleAdmin && *role != db.RoleViewer {
			fmt.Fprintln(env.Stderr, "tlsrpt token create: --role must be admin or viewer")
			return 2
		}
		if len(*name) > 200 {
			fmt.Fprintln(env.Stderr, "tlsrpt token create: --name is longer than 200 characters")
			return 2
		}
		if len(pos) != 0 {
			usage()
			return 2
		}
	case "list":
		if len(pos) != 0 {
			usage()
			return 2
		}
	case "revoke":
		if len(pos) != 1 {
			usage()
			return 2
		}
		var err error
		if id, err = strconv.ParseInt(pos[0], 10, 64); err != nil || id <= 0 {
			fmt.Fprintf(env.Stderr, "tlsrpt token revoke: %q is not a token id (see tlsrpt token list)\n", pos[0])
			return 2
		}
	default:
		fmt.Fprintf(env.Stderr, "tlsrpt token: unknown action %q\n", verb)
		usage()
		return 2
	}
	d, closeDB, err := openDatabase(ctx, env, *dbURL)
	if err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt token: %v\n", err)
		return 1
	}
	defer closeDB()
	switch verb {
	case "create":
		tok := db.NewAPIToken()
		id, err := d.CreateAPIToken(ctx, db.SecretHash(tok), *name, *role)
		if err != nil {
			fmt.Fprintf(env.Stderr, "tlsrpt token create: %v\n", err)
			return 1
		}
		if _, err := d.AddAudit(ctx, db.AuditEntry{Actor: "cli", Action: "token.create", Detail: map[string]any{"id": id, "role": *role, "name": *name}}); err != nil {
			fmt.Fprintf(env.Stderr, "tlsrpt token create: %v\n", err)
			return 1
		}
		fmt.Fprintln(env.Stdout, tok)
		fmt.Fprintf(env.Stderr, "Created %s token %d. It is shown only this once; send it as \"Authorization: Bearer <token>\".\n", *role, id)
	case "list":
		ts, err := d.APITokens(ctx)
		if err != nil {
			fmt.Fprintf(env.Stderr, "tlsrpt token list: %v\n", err)
			return 1
		}
		for _, t := range ts {
			used := "never used"
			if t.LastUsedAt != nil {
				used = "last used " + t.LastUsedAt.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(env.Stdout, "%d\t%s\t%s\tcreated %s\t%s\n", t.ID, t.Role, t.Name, t.CreatedAt.UTC().Format(time.RFC3339), used)
		}
	case "revoke":
		if err := d.RevokeAPIToken(ctx, id); err != nil {
			if errors.Is(err, db.ErrNoCredential) {
				fmt.Fprintf(env.Stderr, "tlsrpt token revoke: no active token %d\n", id)
				return 1
			}
			fmt.Fprintf(env.Stderr, "tlsrpt token revoke: %v\n", err)
			return 1
		}
		if _, err := d.AddAudit(ctx, db.AuditEntry{Actor: "cli", Action: "token.revoke", Detail: map[string]any{"id": id}}); err != nil {
			fmt.Fprintf(env.Stderr, "tlsrpt token revoke: %v\n", err)
			return 1
		}
		fmt.Fprintf(env.Stdout, "revoked token %d\n", id)
	}
	return 0
}
