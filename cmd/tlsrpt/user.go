package main

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	"github.com/tlsrpt/tlsrpt/db"
)

func init() {
	register(command{name: "user", summary: "add, list or remove dashboard accounts (viewer or admin)", run: runUser})
}

// validUsername keeps account names printable and short.
var validUsername = regexp.MustCompile(`^[A-Za-z0-9._@-]{1,64}$`)

// runUser is "tlsrpt user add|list|remove" (docs/cli.md): dashboard accounts
// beside the admin of TLSRPT_ADMIN_PASSWORD, typically viewers who may
// look but not change anything. "add" generates the password and prints
// it once (or sets TLSRPT_USER_PASSWORD when given); the store keeps only
// its bcrypt hash. Adding an existing name sets a new password and role
// and ends its sessions.
func runUser(ctx context.Context, env *Env, args []string) int {
	verb, fs, dbURL, usage, code, ok := verbCommand(env, "user", []string{
		"usage: tlsrpt user add NAME --role viewer|admin [--db URL]",
		"       tlsrpt user list [--db URL]",
		"       tlsrpt user remove NAME [--db URL]",
	}, args)
	if !ok {
		return code
	}
	role := fs.String("role", db.RoleViewer, "viewer (read only) or admin")
	pos, code, ok := parseInterspersed(fs, args[1:])
	if !ok {
		return code
	}
	switch verb {
	case "add", "remove":
		if len(pos) != 1 {
			usage()
			return 2
		}
		if !validUsername.MatchString(pos[0]) {
			fmt.Fprintf(env.Stderr, "tlsrpt user %s: %q is not a user name (letters, digits, . _ @ -, at most 64)\n", verb, pos[0])
			return 2
		}
		if verb == "add" && *role != db.RoleAdmin && *role != db.RoleViewer {
			fmt.Fprintln(env.Stderr, "tlsrpt user add: --role must be viewer or admin")
			return 2
		}
	case "list":
		if len(pos) != 0 {
			usage()
			return 2
		}
	default:
		fmt.Fprintf(env.Stderr, "tlsrpt user: unknown action %q\n", verb)
		usage()
		return 2
	}
	password := env.Getenv("TLSRPT_USER_PASSWORD")
	generated := password == ""
	if generated {
		password = db.NewSecret()[:24]
	}
	var hash string
	if verb == "add" {
		var err error
		if hash, err = db.HashPassword(password); err != nil {
			fmt.Fprintf(env.Stderr, "tlsrpt user add: TLSRPT_USER_PASSWORD: %v\n", err)
			return 2
		}
	}
	d, closeDB, err := openDatabase(ctx, env, *dbURL)
	if err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt user: %v\n", err)
		return 1
	}
	defer closeDB()
	switch verb {
	case "add":
		u, err := d.PutUser(ctx, pos[0], hash, *role)
		if err == nil {
			err = d.DeleteUserSessions(ctx, u.ID)
		}
		if err == nil {
			_, err = d.AddAudit(ctx, db.AuditEntry{Actor: "cli", Action: "user.add", Detail: map[string]string{"user": pos[0], "role": *role}})
		}
		if err != nil {
			fmt.Fprintf(env.Stderr, "tlsrpt user add: %v\n", err)
			return 1
		}
		if generated {
			fmt.Fprintln(env.Stdout, password)
			fmt.Fprintf(env.Stderr, "%s account %q: the password above is shown only this once.\n", *role, pos[0])
		} else {
			fmt.Fprintf(env.Stderr, "%s account %q: password set from TLSRPT_USER_PASSWORD.\n", *role, pos[0])
		}
	case "list":
		us, err := d.Users(ctx)
		if err != nil {
			fmt.Fprintf(env.Stderr, "tlsrpt user list: %v\n", err)
			return 1
		}
		for _, u := range us {
			fmt.Fprintf(env.Stdout, "%s\t%s\n", u.Username, u.Role)
		}
	case "remove":
		if err := d.DeleteUser(ctx, pos[0]); err != nil {
			if errors.Is(err, db.ErrNoCredential) {
				fmt.Fprintf(env.Stderr, "tlsrpt user remove: no user %q\n", pos[0])
				return 1
			}
			fmt.Fprintf(env.Stderr, "tlsrpt user remove: %v\n", err)
			return 1
		}
		if _, err := d.AddAudit(ctx, db.AuditEntry{Actor: "cli", Action: "user.remove", Detail: map[string]string{"user": pos[0]}}); err != nil {
			fmt.Fprintf(env.Stderr, "tlsrpt user remove: %v\n", err)
			return 1
		}
		fmt.Fprintf(env.Stdout, "removed %s\n", pos[0])
	}
	return 0
}
