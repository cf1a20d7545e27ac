package main

import (
	"os"
	"testing"

	"github.com/tlsrpt/tlsrpt/db/dbtest"
)

// TestMain starts the PostgreSQL server the command tests share (package
// dbtest); tests without a database are unaffected. One TestMain serves
// every command test of this package.
func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }
