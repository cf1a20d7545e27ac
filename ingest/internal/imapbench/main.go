// Command imapbench measures IMAP ingestion (BENCHMARKS.md
// target 2): a private Dovecot mailbox of N generated, DKIM-signed report
// mails is read into a private PostgreSQL by the real poller and pipeline,
// and the rate (messages/s) and the peak RSS of the ingesting process are
// printed.
//
//	go run ./ingest/internal/imapbench -n 10000
//
// The driver prepares PostgreSQL and Dovecot and fills the mailbox, then
// runs the ingestion in a child process of its own (imapbench -child), so
// that the peak RSS measured is that of ingestion alone.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"syscall"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/pgembed"
	"github.com/tlsrpt/tlsrpt/ingest"
	"github.com/tlsrpt/tlsrpt/ingest/internal/dovetest"
	"github.com/tlsrpt/tlsrpt/reports"
	"github.com/tlsrpt/tlsrpt/reports/reportgen"
)

// maxMessages bounds -n.
const maxMessages = 1_000_000

// result is what the child reports to the driver.
type result struct {
	Messages   int     `json:"messages"`
	Stored     int     `json:"stored"`
	Duplicates int     `json:"duplicates"`
	Seconds    float64 `json:"seconds"`
	MaxRSSKiB  int64   `json:"max_rss_kib"`
	CPUSeconds float64 `json:"cpu_seconds"`
}

func main() {
	n := flag.Int("n", 10000, "messages in the mailbox")
	runs := flag.Int("runs", 3, "ingest runs over the same mailbox (moved back and a fresh database each time); the median is printed")
	batch := flag.Int("batch", ingest.DefaultBatchSize, "messages per FETCH")
	fsync := flag.Bool("fsync", true, "PostgreSQL with fsync and synchronous commit (as in production)")
	dir := flag.String("dir", "", "work directory (default: a temporary one, removed at the end)")
	maildir := flag.Bool("maildir", false, "deliver the mails as Maildir files instead of IMAP APPEND (for large -n: Dovecot's APPEND slows down as the mailbox grows)")
	child := flag.Bool("child", false, "internal: run the ingestion")
	dbURL := flag.String("db", "", "internal: database URL for -child")
	addr := flag.String("imap", "", "internal: Dovecot address for -child")
	cpuprofile := flag.String("cpuprofile", "", "write the ingesting child's CPU profile to this file")
	flag.Parse()
	ctx := context.Background()
	if *child {
		if *cpuprofile != "" {
			f, err := os.Create(*cpuprofile)
			if err != nil {
				fmt.Fprintln(os.Stderr, "imapbench child:", err)
				os.Exit(1)
			}
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
		if err := runChild(ctx, *dbURL, *addr, *batch); err != nil {
			fmt.Fprintln(os.Stderr, "imapbench child:", err)
			pprof.StopCPUProfile()
			os.Exit(1)
		}
		return
	}
	if *n <= 0 || *n > maxMessages {
		fmt.Fprintf(os.Stderr, "imapbench: -n between 1 and %d\n", maxMessages)
		os.Exit(2)
	}
	if *runs < 1 || *runs > 20 {
		fmt.Fprintln(os.Stderr, "imapbench: -runs between 1 and 20")
		os.Exit(2)
	}
	if err := run(ctx, *n, *runs, *batch, *fsync, *maildir, *dir, *cpuprofile); err != nil {
		fmt.Fprintln(os.Stderr, "imapbench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, n, runs, batch int, fsync, maildir bool, dir, cpuprofile string) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "imapbench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	pg, err := pgembed.Start(ctx, pgembed.Config{Dir: filepath.Join(dir, "pg"), NoFsync: !fsync})
	if err != nil {
		return fmt.Errorf("starting postgresql: %w", err)
	}
	defer pg.Stop()
	mailDir := filepath.Join(dir, "dovecot")
	if err := os.MkdirAll(mailDir, 0o777); err != nil {
		return err
	}
	dv, err := dovetest.Start(mailDir)
	if err != nil {
		return fmt.Errorf("starting dovecot: %w", err)
	}
	defer dv.Close()

	start := time.Now()
	var size int64
	if maildir {
		size, err = fillMaildir(dv, mailDir, n)
	} else {
		size, err = fill(dv, n)
	}
	if err != nil {
		return fmt.Errorf("filling the mailbox: %w\n%s", err, dv.Log())
	}
	fmt.Printf("mailbox: %d messages, %.1f MiB, filled in %s\n", n, float64(size)/(1<<20), time.Since(start).Round(time.Millisecond))

	self, err := os.Executable()
	if err != nil {
		return err
	}
	var rates []float64
	for i := range runs {
		if i > 0 {
			if err := refill(dv); err != nil {
				return fmt.Errorf("moving the messages back: %w", err)
			}
		}
		url, err := freshDatabase(ctx, pg, fmt.Sprintf("bench%d", i))
		if err != nil {
			return err
		}
		cmd := exec.Command(self, "-child", "-db", url, "-imap", dv.Addr, "-batch", fmt.Sprint(batch), "-cpuprofile", cpuprofile)
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("ingest child: %w", err)
		}
		var r result
		if err := json.Unmarshal(out, &r); err != nil {
			return fmt.Errorf("reading the child's result %q: %w", out, err)
		}
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			r.MaxRSSKiB = ru.Maxrss // Linux: KiB
			r.CPUSeconds = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
		}
		if r.Messages != n || r.Stored != n {
			return fmt.Errorf("ingested %d messages, stored %d reports; want %d of each", r.Messages, r.Stored, n)
		}
		var load string
		if b, err := os.ReadFile("/proc/loadavg"); err == nil && len(b) > 14 {
			load = string(b[:14])
		}
		rate := float64(r.Messages) / r.Seconds
		rates = append(rates, rate)
		fmt.Printf("run %d: %d messages, %d reports stored in %.2f s = %.0f messages/s; peak RSS %.1f MiB; ingest CPU %.2f s (fsync %v, batch %d, GOMAXPROCS %d, load %s)\n",
			i+1, r.Messages, r.Stored, r.Seconds, rate, float64(r.MaxRSSKiB)/1024, r.CPUSeconds, fsync, batch, runtime.GOMAXPROCS(0), load)
	}
	slices.Sort(rates)
	fmt.Printf("median: %.0f messages/s over %d runs\n", rates[len(rates)/2], runs)
	return nil
}

// freshDatabase creates and migrates an empty database.
func freshDatabase(ctx context.Context, pg *pgembed.Server, name string) (string, error) {
	if err := pg.CreateDatabase(ctx, name); err != nil {
		return "", err
	}
	url := pg.URL(name)
	d, err := db.Open(ctx, url)
	if err != nil {
		return "", err
	}
	defer d.Close()
	if err := d.Migrate(ctx); err != nil {
		return "", err
	}
	return url, nil
}

// refill moves every message back from the processed folder into the
// INBOX (new UIDs, as new mail has), for the next run.
func refill(dv *dovetest.Server) error {
	c, err := dovetest.Dial(dv.Addr, dovetest.User, "x")
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Select(ingest.DefaultProcessedFolder, nil).Wait(); err != nil {
		return err
	}
	_, err = c.Move(imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}}, "INBOX").Wait()
	return err
}

// fill appends n distinct signed report mails, generated in groups so
// that the driver does not hold the mailbox in memory either.
func fill(dv *dovetest.Server, n int) (int64, error) {
	c, err := dovetest.Dial(dv.Addr, dovetest.User, "x")
	if err != nil {
		return 0, err
	}
	defer c.Close()
	var size int64
	for i := 0; i < n; {
		var msgs [][]byte
		for ; i < n && len(msgs) < 500; i++ {
			m := benchMail(i)
			size += int64(len(m))
			msgs = append(msgs, m)
		}
		if err := dovetest.Append(c, "INBOX", msgs); err != nil {
			return size, err
		}
	}
	return size, nil
}

// benchMail is the i-th mail of the mailbox: reportgen's four senders in
// turn, one report each for one of 50 domains, a failure detail in one of
// ten.
func benchMail(i int) []byte {
	day := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	rep := reportgen.Reporters[i%len(reportgen.Reporters)]
	r := &reportgen.Report{Reporter: rep, Day: day.AddDate(0, 0, -(i/4)%365), Successful: int64(1000 + i%5000), Seq: i,
		Policy: reportgen.Policy{Type: "sts", Mode: "testing", MaxAge: 604800, Domain: fmt.Sprintf("d%d.example", i%50),
			MX: []string{"mx1.example.net", "mx2.example.net"}}}
	if i%10 == 0 {
		r.Failures = []reportgen.Failure{{ResultType: "certificate-expired", SendingIP: rep.IPPrefix + ".7", ReceivingMX: "mx2.example.net", Count: int64(1 + i%7)}}
	}
	return r.Mail("tlsrpt@example.net")
}

// fillMaildir delivers the n mails the way a local delivery agent does:
// files written straight into the INBOX's Maildir new/ folder, which
// Dovecot then indexes when the mailbox is first opened (done here, before
// any run). Appending over IMAP gets slower as the mailbox grows (about 15
// mails/s past 20,000), which makes a 100,000-mail mailbox take hours.
func fillMaildir(dv *dovetest.Server, mailDir string, n int) (int64, error) {
	c, err := dovetest.Dial(dv.Addr, dovetest.User, "x")
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if _, err := dovetest.Count(c, "INBOX"); err != nil { // creates the Maildir
		return 0, err
	}
	inbox := filepath.Join(mailDir, dovetest.User, "Mail")
	st, err := os.Stat(filepath.Join(inbox, "new"))
	if err != nil {
		return 0, fmt.Errorf("the INBOX Maildir: %w", err)
	}
	owner, _ := st.Sys().(*syscall.Stat_t)
	var size int64
	now := time.Now().Unix()
	for i := range n {
		m := benchMail(i)
		size += int64(len(m))
		name := fmt.Sprintf("%d.M%dP%d.imapbench,S=%d", now, i, os.Getpid(), len(m))
		tmp := filepath.Join(inbox, "tmp", name)
		if err := os.WriteFile(tmp, m, 0o600); err != nil {
			return size, err
		}
		if owner != nil {
			if err := os.Chown(tmp, int(owner.Uid), int(owner.Gid)); err != nil {
				return size, err
			}
		}
		if err := os.Rename(tmp, filepath.Join(inbox, "new", name)); err != nil {
			return size, err
		}
	}
	counts, err := dovetest.Count(c, "INBOX")
	if err != nil {
		return size, err
	}
	if counts["INBOX"] != n {
		return size, fmt.Errorf("dovecot sees %d messages in the INBOX, want %d", counts["INBOX"], n)
	}
	return size, nil
}

func runChild(ctx context.Context, url, addr string, batch int) error {
	d, err := db.Open(ctx, url)
	if err != nil {
		return err
	}
	defer d.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	pipe := &ingest.Pipeline{
		Store:  d,
		Limits: reports.DefaultLimits(),
		VerifyDKIM: ingest.NewDKIMVerifier(func(_ context.Context, name string) ([]string, error) {
			return reportgen.LookupTXT(name)
		}),
		Now: time.Now,
		Log: log,
	}
	cfg := ingest.IMAPConfig{
		Security: ingest.SecurityPlaintext, InsecurePlaintextLoopback: true,
		Addr: addr, Username: dovetest.User, Password: "x", BatchSize: batch,
	}
	p, err := ingest.NewPoller(cfg, pipe, d, log)
	if err != nil {
		return err
	}
	p.SetStoreBatch(d.StoreBatch)
	start := time.Now()
	st, err := p.Once(ctx)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(result{Messages: st.Messages, Stored: st.Stored, Duplicates: st.Duplicates, Seconds: time.Since(start).Seconds()})
}
