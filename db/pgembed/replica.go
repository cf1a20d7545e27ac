package pgembed

import (
	"context"
	"errors"
	"fmt"

	"os"

	"path/filepath"
	"strconv"
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
