package main

import (
	"os"
	"testing"

	"github.com/tlsrpt/tlsrpt/db/dbtest"
)

// TestMain starts the PostgreSQL server the tests share (package dbtest).
func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }
