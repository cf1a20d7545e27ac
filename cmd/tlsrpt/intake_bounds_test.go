package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/internal/torture"
)

// TestServeIntakeBounds attacks a real `tlsrpt serve` process over
// loopback the way the security issue's probe did, and checks the bounds:
//   - 25 concurrent gzip bombs of about 1 MB whose trailer claims 100 bytes
//     and that inflate to 1 GiB each: every one is answered 4xx or 5xx with
//     a reason, the server stays up, and its peak RSS (VmHWM) stays under
//     512 MiB (it was 3.5-3.8 GB);
//   - 10 junk bodies of 10 MiB: the database grows by under 20 MB (it grew
//     by 100 MB: each body was quarantined whole).
func TestServeIntakeBounds(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs a server")
	}
	url := dbtest.NewURL(t, true)
	bin := filepath.Join(t.TempDir(), "tlsrpt")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	in := startInstance(t, bin, "serve", []string{
		"DATABASE_URL=" + url,
		"TLSRPT_LISTEN=127.0.0.1:0",
		"TLSRPT_ADMIN_PASSWORD=" + randomHex(12),
		"TLSRPT_ADMIN_PASSWORD_FILE=",
		"TLSRPT_IMAP_URL=",
		// The probe's rate: every post is answered by the intake, not
		// by the rate limit.
		"TLSRPT_RATE_PUBLIC=off",
	})
	client := &http.Client{Timeout: 2 * time.Minute}

	t.Run("lying-trailer-bombs", func(t *testing.T) {
		bomb := lyingGzipBomb(t)
		t.Logf("bomb: %d bytes of gzip, 1 GiB inflated, trailer claims 100 bytes", len(bomb))
		type answer struct {
			status int
			body   string
			err    error
		}
		answers := make([]answer, 25)
		var wg sync.WaitGroup
		for i := range answers {
			wg.Go(func() {
				req, err := http.NewRequest(http.MethodPost, in.base+"/tlsrpt", bytes.NewReader(bomb))
				if err != nil {
					answers[i].err = err
					return
				}
				req.Header.Set("Content-Type", "application/tlsrpt+gzip")
				resp, err := client.Do(req)
				if err != nil {
					answers[i].err = err
					return
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
				answers[i].status, answers[i].body = resp.StatusCode, string(b)
			})
		}
		wg.Wait()
		counts := map[int]int{}
		for i, a := range answers {
			var res struct{ Error struct{ Message string } }
			switch {
			case a.err != nil:
				t.Errorf("bomb %d: %v (did the server crash?)", i, a.err)
			case a.status < 400 || a.status > 599:
				t.Errorf("bomb %d = %d %s, want 4xx or 5xx", i, a.status, a.body)
			case json.Unmarshal([]byte(a.body), &res) != nil || res.Error.Message == "":
				t.Errorf("bomb %d = %d %q, want a reason", i, a.status, a.body)
			case a.status == http.StatusBadRequest && !strings.Contains(res.Error.Message, "decompressed report exceeds 67108864 bytes"):
				t.Errorf("bomb %d = 400 %q, want the decompressed limit named", i, res.Error.Message)
			}
			counts[a.status]++
		}
		if resp, err := client.Get(in.base + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("healthz after the bombs = %v, %v; want 200", resp, err)
		}
		peak := torture.ProcPeakRSS(in.cmd.Process.Pid)
		t.Logf("25 bombs: answers %v; serve peak RSS (VmHWM) %s MiB", counts, torture.MiB(peak))
		torture.Record(t, map[string]any{"attack": "25 concurrent lying-trailer gzip bombs", "answers": counts, "peak_rss_mib": torture.MiB(peak)})
		if peak == 0 {
			t.Fatal("no /proc/PID/status to read the peak RSS from")
		}
		if peak > 512<<20 {
			t.Errorf("serve peak RSS after 25 bombs = %s MiB, want under 512 MiB", torture.MiB(peak))
		}
	})

	t.Run("junk-bodies", func(t *testing.T) {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		size := func() int64 {
			var n int64
			if err := conn.QueryRow(ctx, `SELECT pg_database_size(current_database())`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		before := size()
		seed := torture.Seed(t)
		rng := rand.New(rand.NewPCG(seed, seed))
		junk := make([]byte, 10<<20)
		for i := range 10 {
			for j := 0; j < len(junk); j += 8 {
				binary.LittleEndian.PutUint64(junk[j:], rng.Uint64())
			}
			junk[0] = 'x' // neither gzip nor JSON
			resp, err := client.Post(in.base+"/tlsrpt", "application/tlsrpt+json", bytes.NewReader(junk))
			if err != nil {
				t.Fatalf("junk post %d: %v", i, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("junk post %d = %d %s, want 400", i, resp.StatusCode, b)
			}
		}
		grown := size() - before
		t.Logf("10 junk posts of 10 MiB: database grew by %.1f MB", float64(grown)/1e6)
		torture.Record(t, map[string]any{"attack": "10 junk posts of 10 MiB", "db_growth_mb": fmt.Sprintf("%.1f", float64(grown)/1e6)})
		if grown >= 20e6 {
			t.Errorf("10 junk posts of 10 MiB grew the database by %d bytes, want under 20 MB", grown)
		}
	})
}

// lyingGzipBomb returns about 1 MB of gzip that inflates to 1 GiB of
// spaces after "{": 16 gzip members of 64 MiB each (a reader goes on
// through concatenated members, RFC 1952 §2.2), the last one's trailer
// claiming 100 bytes.
func lyingGzipBomb(t *testing.T) []byte {
	t.Helper()
	member := func(first bool) []byte {
		var b bytes.Buffer
		zw, err := gzip.NewWriterLevel(&b, gzip.BestCompression)
		if err != nil {
			t.Fatal(err)
		}
		if first {
			zw.Write([]byte("{"))
		}
		chunk := bytes.Repeat([]byte(" "), 1<<20)
		for range 64 {
			if _, err := zw.Write(chunk); err != nil {
				t.Fatal(err)
			}
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	out := member(true)
	rest := member(false)
	for range 15 {
		out = append(out, rest...)
	}
	binary.LittleEndian.PutUint32(out[len(out)-4:], 100)
	return out
}
