//go:build linux

package db_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sys/unix"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
)

// TestDeadPeerSocketOptions: the pool's TCP connections to PostgreSQL
// carry the options that end a connection to a vanished server within
// seconds (db/deadpeer.go): keepalive after 5 s, every 5 s, 3 probes, and
// a 15 s TCP_USER_TIMEOUT. The test cluster listens on a unix socket only,
// so the connection goes through a loopback TCP relay; a real machine
// vanishing (its packets dropped) is the kernel's part and is not
// simulated here.
func TestDeadPeerSocketOptions(t *testing.T) {
	ctx := context.Background()
	url := dbtest.NewURL(t, true)
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(cfg.Host, ".s.PGSQL."+strconv.Itoa(int(cfg.Port)))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				s, err := net.Dial("unix", sock)
				if err != nil {
					return
				}
				defer s.Close()
				go io.Copy(s, c)
				io.Copy(c, s)
			}()
		}
	}()
	addr := ln.Addr().(*net.TCPAddr)
	d, err := db.Open(ctx, fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=%s", addr.Port, cfg.User, cfg.Database))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	c, err := d.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	tc, ok := c.Conn().PgConn().Conn().(*net.TCPConn)
	if !ok {
		t.Fatalf("connection is a %T, want *net.TCPConn", c.Conn().PgConn().Conn())
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []struct {
		name       string
		level, opt int
		want       int
	}{
		{"SO_KEEPALIVE", syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1},
		{"TCP_KEEPIDLE", syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE, 5},
		{"TCP_KEEPINTVL", syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL, 5},
		{"TCP_KEEPCNT", syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT, 3},
		{"TCP_USER_TIMEOUT", syscall.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, 15000},
	} {
		var got int
		var gerr error
		if err := raw.Control(func(fd uintptr) { got, gerr = unix.GetsockoptInt(int(fd), o.level, o.opt) }); err != nil {
			gerr = errors.Join(gerr, err)
		}
		if gerr != nil {
			t.Errorf("getsockopt %s: %v", o.name, gerr)
		} else if got != o.want {
			t.Errorf("%s = %d, want %d", o.name, got, o.want)
		}
	}
	if err := c.Conn().Ping(ctx); err != nil {
		t.Errorf("query through the relay: %v", err)
	}
}
