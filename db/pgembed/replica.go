package pgembed

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// StartReplica makes a streaming replica of primary in cfg.Dir and starts
// it as a hot standby: pg_basebackup -R copies the primary's cluster
// (over its socket, as the postgres user, whom initdb's trust rules allow
// to replicate), writes standby.signal and primary_conninfo, and the
// replica gets its own socket directory, so that both listen on the
// socket port without clashing. The primary needs wal_level replica or
// higher and a free WAL sender, PostgreSQL's defaults. cfg.Dir must not
// hold a cluster yet: a replica is made afresh, for tests and
// benchmarks. BinDir is taken from primary when cfg leaves it empty.
func StartReplica(ctx context.Context, primary *Server, cfg Config) (*Server, error) {
	if cfg.Dir == "" {
		return nil, errors.New("pgembed: no directory given")
	}
	bin := cfg.BinDir
	if bin == "" {
		bin = primary.bin
	}
	s, err := newServer(bin, cfg)
	if err != nil {
		return nil, err
	}
	if err := os.Mkdir(s.data, 0o700); err != nil {
		return nil, fmt.Errorf("pgembed: creating the replica's %s: %w", s.data, err)
	}
	if err := s.chown(s.data); err != nil {
		return nil, err
	}
	conn := fmt.Sprintf("host=%s port=%d user=postgres", primary.socketDir, port)
	// -X stream: the WAL written during the copy comes along, so the copy
	// is consistent on its own; -c fast: an immediate checkpoint.
	if err := s.run(ctx, "pg_basebackup", "-D", s.data, "-R", "-X", "stream", "-c", "fast", "-d", conn); err != nil {
		return nil, fmt.Errorf("pgembed: copying the primary into %s: %w", s.data, err)
	}
	if err := s.pickSocketDir(); err != nil {
		return nil, err
	}
	// The copied pgembed.conf names the primary's socket directory.
	if err := s.writeConfig(cfg.NoFsync); err != nil {
		s.cleanupSocketDir()
		return nil, err
	}
	logFile := filepath.Join(s.dir, "postgres.log")
	if err := s.run(ctx, "pg_ctl", "start", "-D", s.data, "-w", "-t", strconv.Itoa(int(startTimeout.Seconds())), "-l", logFile); err != nil {
		s.cleanupSocketDir()
		return nil, fmt.Errorf("pgembed: starting the replica in %s: %w%s", s.data, err, logTail(logFile))
	}
	s.started = true
	return s, nil
}

// Host is the server's socket directory: the host of its connection URL,
// for a multi-host URL listing a primary and its standbys.
func (s *Server) Host() string { return s.socketDir }

// Kill sends SIGKILL to the server's postmaster, as a crash of the
// machine would stop it: no shutdown checkpoint, sessions cut without a
// word. Its backends notice that their postmaster is gone and exit. Stop
// does nothing afterwards; the cluster stays as the crash left it.
func (s *Server) Kill() error {
	pidFile := filepath.Join(s.data, "postmaster.pid")
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return fmt.Errorf("pgembed: reading %s: %w", pidFile, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil || pid <= 0 || !isPostgres(pid) {
		return fmt.Errorf("pgembed: %s names no running postmaster", pidFile)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("pgembed: killing postmaster %d: %w", pid, err)
	}
	s.started, s.killed = false, true
	return nil
}

// Promote makes a standby (StartReplica) the primary with pg_ctl promote,
// waiting until it accepts writes.
func (s *Server) Promote(ctx context.Context) error {
	if err := s.run(ctx, "pg_ctl", "promote", "-D", s.data, "-w", "-t", strconv.Itoa(int(startTimeout.Seconds()))); err != nil {
		return fmt.Errorf("pgembed: promoting the standby in %s: %w", s.data, err)
	}
	return nil
}
