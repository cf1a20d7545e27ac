package main

import (
	"os"
	"path/filepath"
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
