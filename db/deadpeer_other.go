//go:build !linux

package db

import "syscall"

// setUserTimeout does nothing where TCP_USER_TIMEOUT does not exist; the
// keepalive probes still end a connection to a vanished server.
func setUserTimeout(string, string, syscall.RawConn) error { return nil }
