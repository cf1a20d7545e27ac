package ingest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

const (
	dialTimeout = 30 * time.Second
	// commandTimeout bounds every exchange with the server but IDLE: a
	// server that stops answering is treated like a dropped connection.
	commandTimeout = 5 * time.Minute
	// idleTimeout is longer than the 28 minutes after which go-imap
	// restarts IDLE (RFC 2177 asks clients to do so before 29).
	idleTimeout = 31 * time.Minute
)

// session is one authenticated IMAP connection.
type session struct {
	c    *imapclient.Client
	conn net.Conn // under TLS, for deadlines
	// newMail is signalled (without blocking) when the server reports new
	// messages in the selected mailbox.
	newMail chan struct{}
	caps    imap.CapSet
	delim   rune
	// processed and quarantine are the folder names in the server's
	// hierarchy.
	processed, quarantine string
	stopWatch             func() bool
}

// dial connects, secures and authenticates a connection, and makes sure
// the processed and quarantine folders exist.
func (p *Poller) dial(ctx context.Context) (*session, error) {
	cfg := &p.cfg
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	var conn net.Conn
	var err error
	if cfg.Dial != nil {
		conn, err = cfg.Dial(dctx, "tcp", cfg.Addr)
	} else {
		var d net.Dialer
		conn, err = d.DialContext(dctx, "tcp", cfg.Addr)
	}
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", cfg.Addr, err)
	}
	s := &session{conn: conn, newMail: make(chan struct{}, 1)}
	opts := &imapclient.Options{
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil {
					select {
					case s.newMail <- struct{}{}:
					default:
					}
				}
			},
		},
	}
	conn.SetDeadline(time.Now().Add(dialTimeout))
	switch cfg.Security {
	case SecurityTLS:
		tc, err := cfg.tlsConfig()
		if err != nil {
			conn.Close()
			return nil, err
		}
		tconn := tls.Client(conn, tc)
		if err := tconn.HandshakeContext(dctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("tls handshake with %s: %w", cfg.Addr, err)
		}
		s.c = imapclient.New(tconn, opts)
	case SecuritySTARTTLS:
		tc, err := cfg.tlsConfig()
		if err != nil {
			conn.Close()
			return nil, err
		}
		opts.TLSConfig = tc
		// NewStartTLS fails when the server does not offer STARTTLS: it
		// is required, never skipped.
		s.c, err = imapclient.NewStartTLS(conn, opts)
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("starttls with %s: %w", cfg.Addr, err)
		}
	case SecurityPlaintext:
		s.c = imapclient.New(conn, opts)
	default:
		conn.Close()
		return nil, fmt.Errorf("connecting to %s: unknown security %q", cfg.Addr, cfg.Security)
	}
	// Cancelling ctx closes the connection, which ends any command.
	s.stopWatch = context.AfterFunc(ctx, func() { s.c.Close() })
	if err := s.setup(ctx, p); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *session) setup(ctx context.Context, p *Poller) error {
	cfg := &p.cfg
	if err := s.c.WaitGreeting(); err != nil {
		return fmt.Errorf("reading the greeting of %s: %w", cfg.Addr, err)
	}
	// A server that greets with PREAUTH (Dovecot run by doveadm exec in
	// tests, some local setups) needs no login.
	if s.c.State() == imap.ConnStateNotAuthenticated {
		if err := s.authenticate(ctx, p); err != nil {
			return err
		}
	}
	s.deadline(commandTimeout)
	caps, err := s.c.Capability().Wait()
	if err != nil {
		return fmt.Errorf("asking %s for capabilities: %w", cfg.Addr, err)
	}
	s.caps = caps
	if err := s.folders(cfg); err != nil {
		return err
	}
	return nil
}

func (s *session) authenticate(ctx context.Context, p *Poller) error {
	cfg := &p.cfg
	s.deadline(commandTimeout)
	switch cfg.Auth {
	case AuthXOAUTH2, AuthOAuthBearer:
		tok, err := p.token(ctx)
		if err != nil {
			return err
		}
		if err := s.c.Authenticate(newSASLClient(cfg.Auth, cfg.Username, tok)); err != nil {
			return fmt.Errorf("authenticating as %s with %s: %w", cfg.Username, strings.ToUpper(cfg.Auth), err)
		}
	default:
		if err := s.c.Login(cfg.Username, cfg.Password).Wait(); err != nil {
			return fmt.Errorf("logging in to %s as %s: %w", cfg.Addr, cfg.Username, err)
		}
	}
	return nil
}

// folders finds the hierarchy delimiter and the personal namespace, and
// creates the processed and quarantine folders when they are missing.
func (s *session) folders(cfg *IMAPConfig) error {
	s.deadline(commandTimeout)
	// LIST "" "" returns the delimiter of the root (RFC 3501 §6.3.8).
	root, err := s.c.List("", "", nil).Collect()
	if err != nil {
		return fmt.Errorf("listing the hierarchy delimiter: %w", err)
	}
	s.delim = '/'
	if len(root) > 0 && root[0].Delim != 0 {
		s.delim = root[0].Delim
	}
	prefix := ""
	if s.caps.Has(imap.CapNamespace) {
		if ns, err := s.c.Namespace().Wait(); err == nil && len(ns.Personal) > 0 {
			// Courier and old Cyrus keep everything under "INBOX.".
			prefix = ns.Personal[0].Prefix
		}
	}
	name := func(folder string) string {
		n := strings.ReplaceAll(folder, "/", string(s.delim))
		if prefix != "" && !strings.HasPrefix(n, prefix) {
			n = prefix + n
		}
		return n
	}
	s.processed, s.quarantine = name(cfg.ProcessedFolder), name(cfg.QuarantineFolder)
	if cfg.MarkSeenOnly {
		return nil
	}
	for _, f := range []string{s.processed, s.quarantine} {
		l, err := s.c.List("", f, nil).Collect()
		if err != nil {
			return fmt.Errorf("looking for folder %s: %w", f, err)
		}
		if len(l) > 0 && !hasAttr(l[0].Attrs, imap.MailboxAttrNoSelect) {
			continue
		}
		// Parents are created by servers that need them (RFC 3501 §6.3.3
		// lets a server create the intermediate levels).
		if err := s.c.Create(f, nil).Wait(); err != nil {
			var ierr *imap.Error
			if errors.As(err, &ierr) && ierr.Code == imap.ResponseCodeAlreadyExists {
				continue
			}
			return fmt.Errorf("creating folder %s: %w", f, err)
		}
	}
	return nil
}

func hasAttr(attrs []imap.MailboxAttr, a imap.MailboxAttr) bool {
	for _, x := range attrs {
		if strings.EqualFold(string(x), string(a)) {
			return true
		}
	}
	return false
}

// deadline bounds the next exchange with the server.
func (s *session) deadline(d time.Duration) {
	s.conn.SetDeadline(time.Now().Add(d))
}

// close logs out politely but briefly, then drops the connection.
func (s *session) close() {
	if s.stopWatch != nil {
		s.stopWatch()
	}
	s.conn.SetDeadline(time.Now().Add(5 * time.Second))
	s.c.Logout().Wait()
	s.c.Close()
}

// canIdle reports whether the server supports IDLE (RFC 2177, part of
// IMAP4rev2).
func (s *session) canIdle() bool {
	return s.caps.Has(imap.CapIdle) || s.caps.Has(imap.CapIMAP4rev2)
}
