// Package pgembed runs a private PostgreSQL cluster from the server binaries
// installed on the machine (Debian's postgresql package): the product uses it
// when no database URL is configured, the tests use it for a throwaway
// server. Nothing is downloaded at run time.
//
// The cluster lives in Config.Dir/data and listens only on a unix socket
// (no TCP), in Config.Dir itself or, when that path is too long for a socket
// address, in a short private directory under os.TempDir(). When the
// process runs as root, every server binary runs as the postgres user
// through runuser, because PostgreSQL refuses to run as root.
package pgembed

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNoServer is returned by Start when no PostgreSQL server binaries exist
// on the machine.
var ErrNoServer = errors.New("pgembed: no PostgreSQL server binaries found (pg_config --bindir, /usr/lib/postgresql/*/bin): install postgresql")

// port is the port number of the socket file. Each cluster has its own
// socket directory, so all of them can use the default without clashing.
const port = 5432

// maxSocketPath is the longest socket path the kernel accepts (sun_path is
// 108 bytes on Linux, including the terminating NUL).
const maxSocketPath = 107

// startTimeout bounds how long pg_ctl waits for the server to accept
// connections; a cold initdb'd cluster on a slow disk takes a few seconds.
const startTimeout = 60 * time.Second

// Config says where the cluster lives and how it runs.
type Config struct {
	// Dir holds the cluster (Dir/data), its log (Dir/postgres.log) and
	// usually its socket. It is created when missing.
	Dir string
	// Log receives the output of initdb and pg_ctl; nil discards it. The
	// server's own log is Dir/postgres.log.
	Log io.Writer
	// NoFsync turns off fsync and synchronous commit: for tests and
	// benchmarks only, a crash of the machine can then corrupt the cluster.
	NoFsync bool
	// BinDir overrides where the server binaries are looked for.
	BinDir string
}

// Server is a running cluster.
type Server struct {
	bin       string
	dir       string
	data      string
	socketDir string
	// ownSocketDir is a temporary socket directory to remove at Stop.
	ownSocketDir bool
	// started is false when Start found the cluster already running (left
	// by a process that crashed, or shared with another tlsrpt process);
	// Stop then leaves it running.
	started bool
	// killed: Kill ended the server; Stop only removes its socket
	// directory.
	killed bool
	log    io.Writer
	asUser *user.User // non-nil when running as root
}

// Start starts the cluster in cfg.Dir, creating it first when the directory
// holds none. A cluster already running on the directory (its postmaster.pid
// names a live postgres process) is used as it is; a stale postmaster.pid
// left by a crash is removed.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Dir == "" {
		return nil, errors.New("pgembed: no directory given")
	}
	bin := cfg.BinDir
	if bin == "" {
		var err error
		if bin, err = FindBinDir(ctx); err != nil {
			return nil, err
		}
	}
	s, err := newServer(bin, cfg)
	if err != nil {
		return nil, err
	}
	dir := s.dir
	unlock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	defer unlock()

	if running, err := s.adopt(); err != nil {
		return nil, err
	} else if running {
		return s, nil
	}
	if err := s.initdb(ctx); err != nil {
		return nil, err
	}
	if err := s.pickSocketDir(); err != nil {
		return nil, err
	}
	if err := s.writeConfig(cfg.NoFsync); err != nil {
		s.cleanupSocketDir()
		return nil, err
	}
	logFile := filepath.Join(dir, "postgres.log")
	if err := s.run(ctx, "pg_ctl", "start", "-D", s.data, "-w", "-t", strconv.Itoa(int(startTimeout.Seconds())), "-l", logFile); err != nil {
		s.cleanupSocketDir()
		return nil, fmt.Errorf("pgembed: starting postgresql in %s: %w%s", s.data, err, logTail(logFile))
	}
	s.started = true
	return s, nil
}

// FindBinDir returns the directory of the PostgreSQL server binaries:
// pg_config --bindir when initdb is there (pg_config can come from the client
// package alone), else the newest /usr/lib/postgresql/*/bin.
func FindBinDir(ctx context.Context) (string, error) {
	return findBinDir(ctx, "pg_config", "/usr/lib/postgresql/*/bin")
}

func findBinDir(ctx context.Context, pgConfig, pattern string) (string, error) {
	if out, err := exec.CommandContext(ctx, pgConfig, "--bindir").Output(); err == nil {
		d := strings.TrimSpace(string(out))
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	dirs, _ := filepath.Glob(pattern)
	type cand struct {
		dir string
		ver float64
	}
	var cs []cand
	for _, d := range dirs {
		v, err := strconv.ParseFloat(filepath.Base(filepath.Dir(d)), 64)
		if err != nil || !isExec(filepath.Join(d, "initdb")) || !isExec(filepath.Join(d, "pg_ctl")) {
			continue
		}
		cs = append(cs, cand{d, v})
	}
	if len(cs) == 0 {
		return "", ErrNoServer
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].ver > cs[j].ver })
	return cs[0].dir, nil
}

func isExec(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// prepareDir creates the directory, hands it to the postgres user when
// running as root, and checks that this user can reach it.
func (s *Server) prepareDir() error {
	// Missing parents are made traversable for the postgres user; the
	// directory itself is private.
	if err := os.MkdirAll(filepath.Dir(s.dir), 0o755); err != nil {
		return fmt.Errorf("pgembed: creating %s: %w", filepath.Dir(s.dir), err)
	}
	if err := os.Mkdir(s.dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("pgembed: creating %s: %w", s.dir, err)
	}
	if s.asUser == nil {
		return nil
	}
	uid, gid := s.ids()
	if err := os.Chown(s.dir, uid, gid); err != nil {
		return fmt.Errorf("pgembed: handing %s to the postgres user: %w", s.dir, err)
	}
	if err := os.Chmod(s.dir, 0o700); err != nil {
		return fmt.Errorf("pgembed: restricting %s: %w", s.dir, err)
	}
	// The postgres user must be able to traverse every parent directory.
	for p := filepath.Dir(s.dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("pgembed: checking %s: %w", p, err)
		}
		st, _ := fi.Sys().(*syscall.Stat_t)
		ok := fi.Mode().Perm()&0o001 != 0 || (st != nil && int(st.Uid) == uid && fi.Mode().Perm()&0o100 != 0)
		if !ok {
			return fmt.Errorf("pgembed: the postgres user cannot reach %s because %s is not searchable by others: choose a data directory elsewhere or chmod o+x %s", s.dir, p, p)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

func (s *Server) ids() (uid, gid int) {
	uid, _ = strconv.Atoi(s.asUser.Uid)
	gid, _ = strconv.Atoi(s.asUser.Gid)
	return uid, gid
}

// chown gives a file created by this process to the postgres user.
func (s *Server) chown(path string) error {
	if s.asUser == nil {
		return nil
	}
	uid, gid := s.ids()
	if err := os.Chown(path, uid, gid); err != nil {
		return fmt.Errorf("pgembed: handing %s to the postgres user: %w", path, err)
	}
	return nil
}

// lockDir serialises Start between processes sharing the directory, so two
// of them never initdb or start the same cluster at once.
func lockDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, "pgembed.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("pgembed: opening lock in %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("pgembed: locking %s: %w", dir, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// adopt looks at postmaster.pid: a live postgres process on this cluster is
// used as it is; a stale file (the process is gone, or the pid now belongs
// to something else) is removed so that pg_ctl can start the server.
func (s *Server) adopt() (bool, error) {
	pidFile := filepath.Join(s.data, "postmaster.pid")
	b, err := os.ReadFile(pidFile)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("pgembed: reading %s: %w", pidFile, err)
	}
	// postmaster.pid: pid, data dir, start time, port, socket dir, ...
	lines := strings.Split(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(lines[0]))
	if pid > 0 && isPostgres(pid) && len(lines) > 4 && strings.TrimSpace(lines[4]) != "" {
		s.socketDir = strings.TrimSpace(lines[4])
		if _, err := os.Stat(filepath.Join(s.socketDir, ".s.PGSQL."+strconv.Itoa(port))); err == nil {
			return true, nil
		}
	}
	if pid > 0 && isPostgres(pid) {
		return false, fmt.Errorf("pgembed: postgres process %d holds %s but has no socket: stop it first", pid, s.data)
	}
	s.socketDir = ""
	if err := os.Remove(pidFile); err != nil {
		return false, fmt.Errorf("pgembed: removing stale %s: %w", pidFile, err)
	}
	fmt.Fprintf(s.log, "pgembed: removed stale %s (process %d is gone)\n", pidFile, pid)
	return false, nil
}

// isPostgres reports whether pid is a live (not zombie) postgres process.
func isPostgres(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// stat: pid (comm) state ...
	st := string(b)
	open, closing := strings.IndexByte(st, '('), strings.LastIndexByte(st, ')')
	if open < 0 || closing < open || len(st) < closing+3 {
		return false
	}
	comm, state := st[open+1:closing], st[closing+2]
	return (comm == "postgres" || comm == "postmaster") && state != 'Z' && state != 'X'
}

// initdb creates the cluster when Dir/data is missing or empty.
func (s *Server) initdb(ctx context.Context) error {
	entries, err := os.ReadDir(s.data)
	switch {
	case err == nil && len(entries) > 0:
		if _, err := os.Stat(filepath.Join(s.data, "PG_VERSION")); err != nil {
			return fmt.Errorf("pgembed: %s is not empty and holds no PostgreSQL cluster", s.data)
		}
		return nil
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("pgembed: reading %s: %w", s.data, err)
	}
	if err := os.MkdirAll(s.data, 0o700); err != nil {
		return fmt.Errorf("pgembed: creating %s: %w", s.data, err)
	}
	if err := s.chown(s.data); err != nil {
		return err
	}
	// Trust is safe here: the server listens only on a socket in a
	// directory that only its owner can enter.
	if err := s.run(ctx, "initdb", "-D", s.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-instructions"); err != nil {
		return fmt.Errorf("pgembed: initdb in %s: %w", s.data, err)
	}
	conf := filepath.Join(s.data, "postgresql.conf")
	f, err := os.OpenFile(conf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("pgembed: opening %s: %w", conf, err)
	}
	if _, err := fmt.Fprintln(f, "\n# tlsrpt pgembed settings, rewritten at each start\ninclude_if_exists = 'pgembed.conf'"); err != nil {
		f.Close()
		return fmt.Errorf("pgembed: writing %s: %w", conf, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("pgembed: writing %s: %w", conf, err)
	}
	return nil
}

// pickSocketDir puts the socket in Dir when the path fits in a socket
// address, else in a fresh private directory under os.TempDir().
func (s *Server) pickSocketDir() error {
	if len(filepath.Join(s.dir, ".s.PGSQL."+strconv.Itoa(port)+".lock")) <= maxSocketPath {
		s.socketDir = s.dir
		return nil
	}
	d, err := os.MkdirTemp("", "pgembed-")
	if err != nil {
		return fmt.Errorf("pgembed: creating a socket directory: %w", err)
	}
	if len(filepath.Join(d, ".s.PGSQL."+strconv.Itoa(port)+".lock")) > maxSocketPath {
		os.Remove(d)
		return fmt.Errorf("pgembed: no short enough socket directory: %s and %s are too long", s.dir, d)
	}
	s.socketDir, s.ownSocketDir = d, true
	return s.chown(d)
}

func (s *Server) cleanupSocketDir() {
	if s.ownSocketDir {
		os.RemoveAll(s.socketDir)
	}
}

// writeConfig writes the settings that make the cluster private.
func (s *Server) writeConfig(noFsync bool) error {
	var b strings.Builder
	fmt.Fprintf(&b, "listen_addresses = ''\n")
	fmt.Fprintf(&b, "unix_socket_directories = '%s'\n", strings.ReplaceAll(s.socketDir, "'", "''"))
	fmt.Fprintf(&b, "unix_socket_permissions = 0700\n")
	fmt.Fprintf(&b, "port = %d\n", port)
	// Tests open a pool per test and several at once for concurrency tests.
	fmt.Fprintf(&b, "max_connections = 200\n")
	if noFsync {
		b.WriteString("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n")
	} else {
		// A throwaway cluster of the tests keeps PostgreSQL's small
		// defaults: many run at once. Settings made with ALTER SYSTEM
		// (postgresql.auto.conf, read last) override these.
		b.WriteString(machineSizing(s.data).conf())
	}
	path := filepath.Join(s.data, "pgembed.conf")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("pgembed: writing %s: %w", path, err)
	}
	return s.chown(path)
}

// run runs a server binary, as the postgres user when this process is root.
func (s *Server) run(ctx context.Context, name string, args ...string) error {
	path := filepath.Join(s.bin, name)
	var cmd *exec.Cmd
	if s.asUser != nil {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	closeInheritedFiles()
	var out bytes.Buffer
	cmd.Stdout = io.MultiWriter(s.log, &out)
	cmd.Stderr = cmd.Stdout
	cmd.Dir = s.dir
	// pg_ctl leaves the postmaster running with its output redirected to
	// the log file; the delay only guards against a held pipe.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		if msg := lastLine(out.String()); msg != "" {
			return fmt.Errorf("%s: %w: %s", name, err, msg)
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// closeInheritedFiles marks every descriptor above stderr close-on-exec.
// Go opens its own files that way, but descriptors this process inherited
// (a go test fuzz worker's pipes to its coordinator, a systemd socket) are
// not: the postmaster, which outlives the command that started it, would
// hold them open, and whoever waits for their end would wait forever.
func closeInheritedFiles() {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			syscall.CloseOnExec(fd)
		}
	}
}

// WatchProcess starts a small detached watchdog that shuts the cluster
// down (immediate mode) and removes removeDir (if not "") as soon as
// process pid is gone. Tests use it so that a test binary killed by a
// timeout or kill -9 does not leave its cluster running.
func (s *Server) WatchProcess(pid int, removeDir string) error {
	pgctl := filepath.Join(s.bin, "pg_ctl")
	stop := shellQuote(pgctl) + " stop -D " + shellQuote(s.data) + " -m immediate -w >/dev/null 2>&1"
	if s.asUser != nil {
		stop = "runuser -u postgres -- " + stop
	}
	script := fmt.Sprintf("while [ -d /proc/%d ]; do sleep 1; done; if [ -f %s ]; then %s; fi", pid, shellQuote(filepath.Join(s.data, "postmaster.pid")), stop)
	if removeDir != "" {
		script += "; rm -rf " + shellQuote(removeDir)
	}
	closeInheritedFiles()
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pgembed: starting watchdog: %w", err)
	}
	// The watchdog outlives this process by design; release it.
	return cmd.Process.Release()
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// logTail returns the last lines of the server log, for an error message.
func logTail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(io.LimitReader(f, 1<<20))
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > 5 {
			lines = lines[1:]
		}
	}
	if len(lines) == 0 {
		return ""
	}
	return " (server log: " + strings.Join(lines, " | ") + ")"
}

// URL returns the connection URL of a database on the server.
func (s *Server) URL(database string) string {
	q := url.Values{"host": {s.socketDir}, "port": {strconv.Itoa(port)}}
	u := url.URL{Scheme: "postgres", User: url.User("postgres"), Path: "/" + database, RawQuery: q.Encode()}
	return u.String()
}

// CreateDatabase creates the database when it does not exist yet.
func (s *Server) CreateDatabase(ctx context.Context, name string) error {
	return CreateDatabase(ctx, s.URL("postgres"), name)
}

// CreateDatabase creates a database on the server of adminURL (a connection
// as a user allowed to create databases) when it does not exist yet.
func CreateDatabase(ctx context.Context, adminURL, name string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("pgembed: connecting to create database %s: %w", name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return fmt.Errorf("pgembed: looking up database %s: %w", name, err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		// Another process may have created it in between.
		if strings.Contains(err.Error(), "already exists") {
			return nil
		}
		return fmt.Errorf("pgembed: creating database %s: %w", name, err)
	}
	return nil
}

// Stop shuts the server down (fast mode: sessions are cut, no crash
// recovery needed at the next start) when this Server started it; a cluster
// that Start found already running is left alone.
func (s *Server) Stop() error {
	if !s.started {
		if s.killed {
			s.cleanupSocketDir()
		}
		return nil
	}
	s.started = false
	defer s.cleanupSocketDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*startTimeout)
	defer cancel()
	err := s.run(ctx, "pg_ctl", "stop", "-D", s.data, "-m", "fast", "-w", "-t", "60")
	if err == nil {
		return nil
	}
	// Leave no process behind, even when fast shutdown hangs.
	if err2 := s.run(ctx, "pg_ctl", "stop", "-D", s.data, "-m", "immediate", "-w"); err2 != nil {
		return fmt.Errorf("pgembed: stopping postgresql in %s: %w; then %w", s.data, err, err2)
	}
	return fmt.Errorf("pgembed: stopping postgresql in %s (stopped by immediate shutdown): %w", s.data, err)
}

// Dir returns the directory of the cluster.
func (s *Server) Dir() string { return s.dir }

// newServer is the Server of cfg.Dir with the binaries in bin, its
// directory prepared (for the postgres user when running as root):
// what Start and StartReplica share before they make their cluster.
func newServer(bin string, cfg Config) (*Server, error) {
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("pgembed: resolving %s: %w", cfg.Dir, err)
	}
	s := &Server{bin: bin, dir: dir, data: filepath.Join(dir, "data"), log: cfg.Log}
	if s.log == nil {
		s.log = io.Discard
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("pgembed: running as root needs a postgres user (install postgresql): %w", err)
		}
		s.asUser = u
	}
	if err := s.prepareDir(); err != nil {
		return nil, err
	}
	return s, nil
}
