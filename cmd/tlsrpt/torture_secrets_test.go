package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/internal/torture"
)

// TestTortureSecretsNotLogged runs commands with passwords and tokens in
// their settings against servers that refuse them (a closed IMAP port, an
// IMAP server that hangs up, a database that is not there) and looks for
// the secrets in everything the commands print.
func TestTortureSecretsNotLogged(t *testing.T) {
	const (
		dbPW    = "DBs3cret-Passw0rd"
		imapPW  = "IMAPs3cret-Passw0rd"
		refresh = "1//refresh-S3cret-token"
		client  = "oauth-client-S3cret"
	)
	// An IMAP "server" that greets and hangs up on the login.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("* OK IMAP4rev1 ready\r\n"))
			buf := make([]byte, 4096)
			c.Read(buf)
			c.Write([]byte("a NO [AUTHENTICATIONFAILED] invalid credentials\r\n"))
			c.Close()
		}
	}()
	dbURL := dbtest.NewURL(t, true)
	runs := []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"database down", map[string]string{"DATABASE_URL": "postgres://tlsrpt:" + dbPW + "@127.0.0.1:1/tlsrpt?connect_timeout=2",
			"TLSRPT_IMAP_URL": "imap://rua@127.0.0.1:1/INBOX", "TLSRPT_IMAP_PASSWORD": imapPW, "TLSRPT_IMAP_INSECURE_PLAINTEXT_LOOPBACK": "1"},
			[]string{"ingest", "--once"}},
		{"imap refused", map[string]string{"DATABASE_URL": dbURL, "TLSRPT_IMAP_URL": "imap://rua@" + ln.Addr().String() + "/INBOX",
			"TLSRPT_IMAP_PASSWORD": imapPW, "TLSRPT_IMAP_INSECURE_PLAINTEXT_LOOPBACK": "1", "TLSRPT_LOG_LEVEL": "debug"},
			[]string{"ingest", "--once", "--dkim=false"}},
		{"imap closed port", map[string]string{"DATABASE_URL": dbURL, "TLSRPT_IMAP_URL": "imap://rua@127.0.0.1:1/INBOX",
			"TLSRPT_IMAP_PASSWORD": imapPW, "TLSRPT_IMAP_INSECURE_PLAINTEXT_LOOPBACK": "1", "TLSRPT_LOG_LEVEL": "debug"},
			[]string{"ingest", "--once", "--dkim=false"}},
		{"oauth refresh refused", map[string]string{"DATABASE_URL": dbURL, "TLSRPT_IMAP_URL": "imap://rua@" + ln.Addr().String() + "/INBOX",
			"TLSRPT_IMAP_OAUTH_REFRESH_TOKEN": refresh, "TLSRPT_IMAP_OAUTH_CLIENT_ID": "id", "TLSRPT_IMAP_OAUTH_CLIENT_SECRET": client,
			"TLSRPT_IMAP_OAUTH_TOKEN_URL": "http://" + ln.Addr().String() + "/token", "TLSRPT_IMAP_INSECURE_PLAINTEXT_LOOPBACK": "1"},
			[]string{"ingest", "--once", "--dkim=false"}},
		{"import with a bad database", map[string]string{"DATABASE_URL": "postgres://tlsrpt:" + dbPW + "@127.0.0.1:1/tlsrpt?connect_timeout=2"},
			[]string{"import", corpusDir}},
	}
	var printed int
	for _, r := range runs {
		var out, errb bytes.Buffer
		env := &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return r.env[k] }}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		code := Main(ctx, r.args, env)
		cancel()
		all := out.String() + errb.String()
		printed += len(all)
		t.Logf("%s: exit %d: %.400s", r.name, code, all)
		if code == 0 {
			t.Errorf("%s: exit code 0, want a failure", r.name)
		}
		if all == "" {
			t.Errorf("%s: printed nothing: the test would prove nothing", r.name)
		}
		for _, s := range []string{dbPW, imapPW, refresh, client} {
			if strings.Contains(all, s) {
				t.Errorf("%s: the output contains a secret (%.6s...):\n%s", r.name, s, all)
			}
		}
	}
	torture.Record(t, map[string]any{"runs": len(runs), "bytes_printed": printed})
}
