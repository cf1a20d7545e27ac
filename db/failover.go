package db

import (
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Failover (docs/store.md, RELIABILITY.md "Failover"). DATABASE_URL may
// list several hosts, a primary and its standbys, with
// target_session_attrs=read-write: pgx tries them in order, skips a host
// that refuses the connection and one that is a standby, so that a new
// connection always reaches whichever server is the primary now. What the
// pool of the primary adds (primaryConfig):
//
//   - several hosts without target_session_attrs mean read-write, not
//     libpq's "any": tlsrpt writes on this pool, and a standby listed first
//     would otherwise take every connection while the primary is down and
//     refuse every write after;
//   - several hosts without connect_timeout get failoverConnectTimeout per
//     host: a primary whose machine is gone answers no TCP SYN, and the
//     next host would be tried only after the kernel's two minutes;
//   - a connection told that its server is gone or no longer the primary
//     (admin or crash shutdown, 57P01-57P03; read-only transaction, 25006)
//     is closed, and so is every other connection of the pool (Reset),
//     since they all lead to that server: the next query connects anew and
//     finds the new primary. A connection that merely breaks (EOF,
//     refused) is closed by pgx itself, and pgxpool pings a connection
//     idle for more than a second before handing it out.
//
// The IMAP poller's mailbox lock is a session of the old primary and dies
// with it; the poller takes it again on the new primary (ingest/lock.go).

// failoverConnectTimeout bounds the connection to each host of a
// multi-host DATABASE_URL that sets no connect_timeout.
const failoverConnectTimeout = 5 * time.Second

// resetEvery is the shortest time between two resets of the pool: the
// connections of a dead server report it one after the other.
const resetEvery = time.Second

// serverGone are the SQLSTATEs that say every connection to this server
// is useless now: read_only_sql_transaction (the server is a standby, or
// was demoted), admin_shutdown, crash_shutdown, cannot_connect_now.
var serverGone = map[string]bool{"25006": true, "57P01": true, "57P02": true, "57P03": true}

// poolResetter resets a pool at most once per resetEvery and counts it.
type poolResetter struct {
	pool   atomic.Pointer[pgxpool.Pool]
	last   atomic.Int64 // unix nanoseconds of the last reset
	resets atomic.Int64
}

func (r *poolResetter) reset() {
	p := r.pool.Load()
	if p == nil {
		return
	}
	now := time.Now().UnixNano()
	last := r.last.Load()
	if now-last < int64(resetEvery) || !r.last.CompareAndSwap(last, now) {
		return
	}
	r.resets.Add(1)
	// Not from inside the connection's own read: Reset closes the idle
	// connections, and this one is marked closed by pgx as we return.
	go p.Reset()
}

// hostCount is the number of distinct hosts a parsed URL lists.
func hostCount(cfg *pgxpool.Config) int {
	hosts := map[string]bool{cfg.ConnConfig.Host: true}
	for _, f := range cfg.ConnConfig.Fallbacks {
		hosts[f.Host] = true
	}
	return len(hosts)
}

// primaryConfig prepares the pool of the primary for a failover (see
// above); url is the connection string cfg was parsed from.
func primaryConfig(cfg *pgxpool.Config, url string, r *poolResetter) {
	cc := cfg.ConnConfig
	if hostCount(cfg) > 1 {
		// pgx parses target_session_attrs into ValidateConnect and keeps
		// no trace of whether it was given; "any" leaves it nil too.
		if !strings.Contains(url, "target_session_attrs") && os.Getenv("PGTARGETSESSIONATTRS") == "" {
			cc.ValidateConnect = pgconn.ValidateConnectTargetSessionAttrsReadWrite
		}
		if cc.ConnectTimeout == 0 && !strings.Contains(url, "connect_timeout") && os.Getenv("PGCONNECT_TIMEOUT") == "" {
			cc.ConnectTimeout = failoverConnectTimeout
		}
	}
	prev := cc.OnPgError
	cc.OnPgError = func(c *pgconn.PgConn, pe *pgconn.PgError) bool {
		if serverGone[pe.Code] {
			r.reset()
			return false // close this connection
		}
		if prev != nil {
			return prev(c, pe)
		}
		return !strings.EqualFold(pe.Severity, "FATAL")
	}
}

// Unavailable reports whether err means that the database cannot be
// reached now (no primary during a failover, a server shutting down, a
// broken connection), as opposed to a query or data error: the caller
// should answer 503 and let the client retry.
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	// Any failure to connect: no server, none writable, none accepting
	// connections to the database; the operator's to fix, not the client's.
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return serverGone[pe.Code] || strings.HasPrefix(pe.Code, "08") || pe.Code == "53300"
	}
	var ne net.Error
	return errors.As(err, &ne) || pgconn.SafeToRetry(err) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed)
}
