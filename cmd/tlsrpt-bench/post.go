package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tlsrpt/tlsrpt/api"
	"github.com/tlsrpt/tlsrpt/ingest"
	"github.com/tlsrpt/tlsrpt/reports"
	"github.com/tlsrpt/tlsrpt/reports/reportgen"
)

// Bounds of "tlsrpt-bench post".
const (
	maxPostCount       = 1_000_000
	maxPostConcurrency = 512
	maxPostDuration    = 30 * time.Minute
	maxPostDetails     = 1000
)

// runBenchPost drives POST /tlsrpt of the real server, listening on
// loopback, with a Go load generator: --count distinct gzip reports in the
// shapes of the real senders, --concurrency connections, stopped after
// --max-time whatever is left. Afterwards it counts the rows the run
// stored, so that a report answered 200 but not stored shows as lost.
func runBenchPost(ctx context.Context, env *Env, args []string) int {
	fs := flag.NewFlagSet("post", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	dbURL := fs.String("db", "", "PostgreSQL URL (default DATABASE_URL, else the embedded server)")
	count := fs.Int("count", 20000, "reports to post")
	conc := fs.Int("concurrency", 32, "concurrent connections")
	maxTime := fs.Duration("max-time", 2*time.Minute, "stop posting after this long")
	domains := fs.Int("domains", 1000, "policy domains the reports are for")
	details := fs.Int("details", 3, "failure details per report: 0 to this many, evenly (the corpus: half none, most 1-3)")
	useTLS := fs.Bool("tls", false, "serve HTTPS (a self-signed certificate made for the run), as a sender sees the endpoint")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run (server and load generator) to this file")
	var intake ingest.BatcherOptions
	fs.IntVar(&intake.Workers, "workers", 0, "intake: transactions in flight (0: the server's default)")
	fs.IntVar(&intake.MaxReports, "max-batch", 0, "intake: reports per transaction at most (0: the server's default)")
	fs.DurationVar(&intake.MaxDelay, "max-delay", 0, "intake: longest a batch waits for more reports (0: the server's default)")
	setUsage(fs, env, "post", "[flags]")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *count < 1 || *count > maxPostCount || *conc < 1 || *conc > maxPostConcurrency ||
		*maxTime <= 0 || *maxTime > maxPostDuration || *domains < 1 || *domains > maxSeedDomains || *details < 0 || *details > maxPostDetails ||
		intake.Workers < 0 || intake.Workers > 64 || intake.MaxReports < 0 || intake.MaxReports > 10_000 || intake.MaxDelay < 0 || intake.MaxDelay > time.Second {
		fmt.Fprintf(env.Stderr, "tlsrpt-bench post: out of bounds (count 1..%d, concurrency 1..%d, max-time ≤ %s, domains 1..%d, details 0..%d, workers ≤ 64, max-batch ≤ 10000, max-delay ≤ 1s)\n",
			maxPostCount, maxPostConcurrency, maxPostDuration, maxSeedDomains, maxPostDetails)
		return 2
	}
	d, closeDB, err := openDatabase(ctx, env, *dbURL)
	if err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt-bench post: %v\n", err)
		return 1
	}
	defer closeDB()
	// The public rate limit (60 a minute per address by default) is lifted:
	// every request comes from 127.0.0.1, and the limit is not what is
	// measured. A provider's senders come from many addresses.
	log := slog.New(slog.DiscardHandler)
	pipe := &ingest.Pipeline{Store: d, Limits: reports.DefaultLimits(), Log: log}
	srv, err := api.New(api.Config{DB: d, Pipeline: pipe, Log: log, PublicRate: api.Rate{Per: 1e9, Every: time.Second, Burst: 1 << 30}, Intake: intake})
	if err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt-bench post: creating server: %v\n", err)
		return 1
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt-bench post: listening: %v\n", err)
		return 1
	}
	// Connections opened: with keep-alive, one per client connection,
	// not one per report (each would cost a TCP, and with --tls a TLS,
	// handshake).
	var conns atomic.Int64
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second,
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				conns.Add(1)
			}
		}}
	scheme := "http"
	var clientTLS *tls.Config
	if *useTLS {
		cert, pool, err := benchCertificate()
		if err != nil {
			fmt.Fprintf(env.Stderr, "tlsrpt-bench post: %v\n", err)
			return 1
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		clientTLS = &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
		scheme = "https"
	}
	go hs.Serve(ln)
	defer hs.Close()

	// A run tag in the sequence number keeps report ids distinct across
	// runs against the same store (the millisecond of the start: two runs
	// a second apart, as in the test, get distinct reports); Seq also
	// separates reports of one day. A report already stored all the same
	// is answered "already stored" and counted as a duplicate, not lost.
	tag := int(time.Now().UnixMilli() % 1_000_000)
	day := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -1)
	bodies := make([][]byte, *count)
	for i := range bodies {
		// One report per domain and day, as one reporter sends them: the
		// days go back as the domains run out, so concurrent stores do not
		// all update the same rollup rows.
		g := benchReport(i%*domains, day.AddDate(0, 0, -(i / *domains)), tag*1_000_000+i+1, *details)
		bodies[i] = reportgen.Gzip(g.JSON())
	}
	var size int64
	for _, b := range bodies {
		size += int64(len(b))
	}
	var before int64
	if err := d.Pool.QueryRow(ctx, `SELECT count(*) FROM reports WHERE source = 'https'`).Scan(&before); err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt-bench post: counting: %v\n", err)
		return 1
	}
	stopProfile, err := startCPUProfile(*cpuProfile)
	if err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt-bench post: %v\n", err)
		return 1
	}
	defer stopProfile()
	pgDir := embeddedDataDir(env, *dbURL)
	pg0 := postgresCPU(pgDir)
	cpu0 := processCPU()
	res := postLoad(ctx, scheme+"://"+ln.Addr().String()+"/tlsrpt", clientTLS, bodies, *conc, *maxTime)
	cpu := processCPU() - cpu0
	var pgCPU time.Duration
	if pg0 != nil {
		pgCPU = cpuSince(pg0, postgresCPU(pgDir))
	}
	var after int64
	if err := d.Pool.QueryRow(ctx, `SELECT count(*) FROM reports WHERE source = 'https'`).Scan(&after); err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt-bench post: counting: %v\n", err)
		return 1
	}
	s := percentiles(res.latencies)
	fmt.Fprintf(env.Stdout, "posted %d of %d reports (%s, %d B gzip on average, 0-%d failure details) in %s with %d connections: %.0f reports/s\n",
		res.sent, *count, scheme, size/int64(len(bodies)), *details, res.elapsed.Round(time.Millisecond), *conc, float64(res.ok)/res.elapsed.Seconds())
	fmt.Fprintf(env.Stdout, "answered 200: %d; errors: %d %v; latency p50 %s, p95 %s, max %s\n",
		res.ok, res.sent-res.ok, res.statusSummary(), ms(s.p50), ms(s.p95), ms(s.max))
	st := srv.IntakeStats()
	fmt.Fprintf(env.Stdout, "server: %d connections opened, %d batches (%.1f reports each); CPU of this process (server and load generator) %.0f µs per report\n",
		conns.Load(), st.Batches, float64(st.Reports)/float64(max(st.Batches, 1)), float64(cpu.Microseconds())/float64(max(res.sent, 1)))
	if pg0 != nil {
		fmt.Fprintf(env.Stdout, "embedded PostgreSQL: CPU %.0f µs per report\n", float64(pgCPU.Microseconds())/float64(max(res.sent, 1)))
	}
	stored := after - before
	// A report cut by --max-time after the server committed it is stored
	// without a 200 seen: more rows than 200s is not a loss.
	fresh := int64(res.ok - res.dups)
	fmt.Fprintf(env.Stdout, "rows stored: %d (lost: %d; answered already stored: %d)\n", stored, max(0, fresh-stored), res.dups)
	if res.ok != res.sent || stored < fresh {
		return 1
	}
	return 0
}

// postResult is what the load generator saw.
type postResult struct {
	sent, ok  int
	dups      int            // of ok, answered "already stored"
	statuses  map[string]int // "503", "error: ..." → how many
	latencies []time.Duration
	elapsed   time.Duration
}

func (r postResult) statusSummary() string {
	keys := make([]string, 0, len(r.statuses))
	for k := range r.statuses {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	for _, k := range keys {
		fmt.Fprintf(&b, "[%s: %d]", k, r.statuses[k])
	}
	return b.String()
}

// postLoad posts every body once over conc keep-alive connections, until
// all are posted or maxTime has passed.
func postLoad(ctx context.Context, url string, tlsConf *tls.Config, bodies [][]byte, conc int, maxTime time.Duration) postResult {
	ctx, cancel := context.WithTimeout(ctx, maxTime)
	defer cancel()
	tr := &http.Transport{MaxIdleConns: conc, MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc, TLSClientConfig: tlsConf}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: time.Minute}
	var next atomic.Int64
	var mu sync.Mutex
	res := postResult{statuses: map[string]int{}, latencies: make([]time.Duration, 0, len(bodies))}
	t0 := time.Now()
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= len(bodies) {
					return
				}
				status, dup, lat := postOne(ctx, client, url, bodies[i])
				mu.Lock()
				res.sent++
				if status == "200" {
					res.ok++
					if dup {
						res.dups++
					}
					res.latencies = append(res.latencies, lat)
				} else {
					res.statuses[status]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(t0)
	return res
}

// postOne posts one body and returns the status ("200", "503", or
// "error: ..." for a transport error), whether the server answered that
// the report was already stored, and the latency.
func postOne(ctx context.Context, c *http.Client, url string, body []byte) (string, bool, time.Duration) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return "error: " + err.Error(), false, 0
	}
	req.Header.Set("Content-Type", "application/tlsrpt+gzip")
	t0 := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return "error: max-time reached", false, 0
		}
		return "error: " + err.Error(), false, 0
	}
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	lat := time.Since(t0)
	var res struct {
		Duplicates int `json:"duplicates"`
	}
	dup := resp.StatusCode == http.StatusOK && json.Unmarshal(answer, &res) == nil && res.Duplicates > 0
	return fmt.Sprint(resp.StatusCode), dup, lat
}

// processCPU is the CPU time (user and system) this process used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchCertificate makes a self-signed certificate for localhost and
// 127.0.0.1, valid for a day, and the pool that trusts it.
func benchCertificate() (tls.Certificate, *x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("making certificate: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("making certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("making certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool, nil
}
