package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDatabasePassword(t *testing.T) {
	file := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(file, []byte("s3cr'et@/x\n"), 0o600)
	for _, tc := range []struct {
		url  string
		env  map[string]string
		want string
	}{
		{"postgres://tlsrpt@db:5432/tlsrpt", nil, "postgres://tlsrpt@db:5432/tlsrpt"},
		{"postgres://tlsrpt@db:5432/tlsrpt?sslmode=disable", map[string]string{"TLSRPT_DATABASE_PASSWORD_FILE": file},
			"postgres://tlsrpt:s3cr%27et%40%2Fx@db:5432/tlsrpt?sslmode=disable"},
		{"host=db user=tlsrpt", map[string]string{"TLSRPT_DATABASE_PASSWORD": `a'b\c`}, `host=db user=tlsrpt password='a\'b\\c'`},
	} {
		env := &Env{Getenv: func(k string) string { return tc.env[k] }}
		got, err := databasePassword(env, tc.url)
		if err != nil || got != tc.want {
			t.Errorf("databasePassword(%q, %v) = %q, %v; want %q", tc.url, tc.env, got, err, tc.want)
		}
	}
}

func TestReadDatabaseURL(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "read-url")
	os.WriteFile(file, []byte("postgres://tlsrpt@replica:5432/tlsrpt\n"), 0o600)
	for _, tc := range []struct {
		env     map[string]string
		want    string
		wantErr string
	}{
		{nil, "", ""},
		{map[string]string{"DATABASE_READ_URL": "postgres://tlsrpt@replica/tlsrpt"}, "postgres://tlsrpt@replica/tlsrpt", ""},
		{map[string]string{"DATABASE_READ_URL_FILE": file, "TLSRPT_DATABASE_PASSWORD": "pw"}, "postgres://tlsrpt:pw@replica:5432/tlsrpt", ""},
		{map[string]string{"DATABASE_READ_URL": "x", "DATABASE_READ_URL_FILE": file}, "", "DATABASE_READ_URL and DATABASE_READ_URL_FILE are both set"},
		{map[string]string{"DATABASE_READ_URL_FILE": filepath.Join(dir, "missing")}, "", "DATABASE_READ_URL_FILE"},
	} {
		env := &Env{Getenv: func(k string) string { return tc.env[k] }}
		got, err := readDatabaseURL(env)
		if got != tc.want || (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("readDatabaseURL(%v) = %q, %v; want %q, error %q", tc.env, got, err, tc.want, tc.wantErr)
		}
	}
	// The embedded default has no replica: the setting alone is refused.
	env := &Env{Getenv: func(k string) string {
		return map[string]string{"DATABASE_READ_URL": "postgres://tlsrpt@replica/tlsrpt", "TLSRPT_DATA_DIR": dir}[k]
	}}
	if _, _, _, err := openDatabaseUnchecked(context.Background(), env, ""); err == nil || !strings.Contains(err.Error(), "DATABASE_READ_URL is set without DATABASE_URL") {
		t.Errorf("openDatabaseUnchecked() with only DATABASE_READ_URL = %v, want the refusal", err)
	}
}
