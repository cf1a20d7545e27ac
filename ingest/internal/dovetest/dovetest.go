// Package dovetest runs a private Dovecot for tests and benchmarks: a
// loopback TCP listener that starts `doveadm exec imap` (Dovecot's own
// IMAP process, already logged in: it greets with PREAUTH) for every
// connection, on a Maildir in a directory of the caller. This is the way
// go-imap tests against Dovecot, made reachable by URL so that the tlsrpt
// binary itself can connect.
package dovetest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tlsrpt/tlsrpt/internal/testreq"
)

// User is the mailbox owner; any password is accepted (PREAUTH).
const User = "rua"

// Server is a running private Dovecot.
type Server struct {
	// Addr is the loopback host:port to connect to.
	Addr string
	// Dir holds the configuration, the log and the mail.
	Dir string
	ln  net.Listener

	mu    sync.Mutex
	procs map[*exec.Cmd]net.Conn
	wg    sync.WaitGroup
}

// Available reports why Dovecot cannot run here, or nil.
func Available() error {
	if _, err := exec.LookPath("doveadm"); err != nil {
		return fmt.Errorf("doveadm not found (apt-get install dovecot-imapd): %w", err)
	}
	return nil
}

// New starts a server for the test and stops it when the test ends. It
// skips the test when Dovecot is missing, or fails it when it is required.
func New(t testing.TB) *Server {
	t.Helper()
	testreq.Need(t, "dovecot", "Dovecot", Available())
	s, err := Start(t.TempDir())
	if err != nil {
		t.Fatalf("starting Dovecot: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("stopping Dovecot: %v", err)
		}
	})
	return s
}

// Start writes the configuration into dir and listens on 127.0.0.1.
func Start(dir string) (*Server, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	ids := ""
	if os.Getuid() == 0 {
		// Dovecot refuses to access mail as root: the mail belongs to
		// nobody, who must be able to reach dir.
		ids = "mail_uid = 65534\nmail_gid = 65534\n"
		// Only dir itself and, for t.TempDir, its parents below the
		// system's temporary directory are opened.
		tmp := filepath.Clean(os.TempDir())
		for d := dir; ; d = filepath.Dir(d) {
			if err := os.Chmod(d, 0o777); err != nil {
				return nil, fmt.Errorf("opening %s to the mail user: %w", d, err)
			}
			if p := filepath.Dir(d); p == tmp || !strings.HasPrefix(p, tmp+"/") {
				break
			}
		}
	}
	cfg := "log_path = " + dir + "/dovecot.log\n" +
		"ssl = no\n" +
		"mail_location = maildir:" + dir + "/%u/Mail\n" +
		// The benchmark measures tlsrpt, not the disk of the test machine.
		"mail_fsync = never\n" +
		ids +
		"namespace inbox {\n  separator = /\n  prefix =\n  inbox = yes\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "dovecot.conf"), []byte(cfg), 0o644); err != nil {
		return nil, fmt.Errorf("writing the Dovecot configuration: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening: %w", err)
	}
	s := &Server{Addr: ln.Addr().String(), Dir: dir, ln: ln, procs: map[*exec.Cmd]net.Conn{}}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// URL is the TLSRPT_IMAP_URL of the INBOX (plaintext on loopback).
func (s *Server) URL() string { return "imap://" + User + "@" + s.Addr + "/INBOX" }

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		cmd := exec.Command("doveadm", "-c", filepath.Join(s.Dir, "dovecot.conf"), "exec", "imap")
		cmd.Env = []string{"USER=" + User, "HOME=" + s.Dir, "PATH=" + os.Getenv("PATH")}
		cmd.Dir = s.Dir
		cmd.Stdin, cmd.Stdout = conn, conn
		logf, _ := os.OpenFile(filepath.Join(s.Dir, "imap-stderr.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if logf != nil {
			cmd.Stderr = logf
		}
		if err := cmd.Start(); err != nil {
			conn.Close()
			if logf != nil {
				logf.Close()
			}
			continue
		}
		s.mu.Lock()
		s.procs[cmd] = conn
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			cmd.Wait()
			conn.Close()
			if logf != nil {
				logf.Close()
			}
			s.mu.Lock()
			delete(s.procs, cmd)
			s.mu.Unlock()
		}()
	}
}

// Close stops listening and ends every IMAP process.
func (s *Server) Close() error {
	err := s.ln.Close()
	s.mu.Lock()
	for cmd, conn := range s.procs {
		conn.Close()
		if cmd.Process != nil {
			cmd.Process.Kill()
		}
	}
	s.mu.Unlock()
	s.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// Log returns the end of Dovecot's log, for failure messages.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "dovecot.log"))
	e, _ := os.ReadFile(filepath.Join(s.Dir, "imap-stderr.log"))
	all := string(b) + string(e)
	if len(all) > 4000 {
		all = all[len(all)-4000:]
	}
	return all
}

var _ io.Closer = (*Server)(nil)
