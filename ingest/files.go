package ingest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/tlsrpt/tlsrpt/reports"
)

// Import defaults.
const (
	// DefaultImportBatch is how many reports go to the store in one
	// transaction. Round trips stopped mattering at a few hundred; what
	// 2,000 buys is locality: the batch's rollup keys are sorted, and with
	// more of them consecutive inserts land in the same index pages, so a
	// million-report backfill needs a fifth less of the server's CPU than
	// with 500 (docs/bench-import.md). A batch is still a few MB, and a
	// batch PostgreSQL refuses for its content is stored again one report
	// at a time.
	DefaultImportBatch = 2000
	// maxPendingInputs bounds the parsed inputs queued between the readers
	// and the batcher.
	maxPendingInputs = 64
	// maxPendingBytes bounds the raw bytes of one batch: with a few
	// batches in flight, the memory of an import.
	maxPendingBytes = 64 << 20
	// storeWorkers is how many batches are stored at once.
	storeWorkers = 2
)

// File is one path found by ScanPaths.
type File struct {
	Path string
	Size int64
	// Skip, when set, says why a file found in a directory is not read:
	// by its name it is not a report (README.md, SOURCES.md, LICENSE, code).
	Skip string
}

// ScanPaths expands the arguments of "tlsrpt import" into files: a file is
// itself; a directory is walked (hidden entries skipped); a Maildir (a
// directory with cur, new and tmp) contributes the messages of cur and new
// and of its Maildir++ subfolders, not its index files. The files are in
// path order. Kinds are not decided here: Importer sniffs each file's
// content.
func ScanPaths(paths []string) ([]File, error) {
	var out []File
	seen := map[string]bool{}
	add := func(path string, size int64) {
		if !seen[path] {
			seen[path] = true
			out = append(out, File{Path: path, Size: size})
		}
	}
	for _, root := range paths {
		fi, err := os.Stat(root)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", root, err)
		}
		if !fi.IsDir() {
			add(root, fi.Size())
			continue
		}
		err = filepath.WalkDir(root, func(path string, de fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			name := de.Name()
			if path != root && strings.HasPrefix(name, ".") && !(de.IsDir() && isMaildir(path)) {
				if de.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if de.IsDir() {
				if isMaildir(path) {
					return scanMaildir(path, add)
				}
				return nil
			}
			if !de.Type().IsRegular() {
				return nil
			}
			info, err := de.Info()
			if err != nil {
				return err
			}
			add(path, info.Size())
			if why := notReportName(name); why != "" {
				out[len(out)-1].Skip = why
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("walking %s: %w", root, err)
		}
	}
	return out, nil
}

// isMaildir reports whether dir has the cur, new and tmp of a Maildir.
func isMaildir(dir string) bool {
	for _, sub := range []string{"cur", "new", "tmp"} {
		fi, err := os.Stat(filepath.Join(dir, sub))
		if err != nil || !fi.IsDir() {
			return false
		}
	}
	return true
}

// scanMaildir adds the messages of a Maildir (tmp holds deliveries in
// progress and is skipped) and returns SkipDir for the walk; Maildir++
// subfolders (".name") are Maildirs of their own.
func scanMaildir(dir string, add func(string, int64)) error {
	for _, sub := range []string{"cur", "new"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			return err
		}
		for _, e := range entries {
			if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			info, err := e.Info()
			if err != nil {
				return err
			}
			add(filepath.Join(dir, sub, e.Name()), info.Size())
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if e.IsDir() && strings.HasPrefix(e.Name(), ".") && isMaildir(p) {
			if err := scanMaildir(p, add); err != nil && !errors.Is(err, filepath.SkipDir) {
				return err
			}
		}
	}
	return filepath.SkipDir
}

// Importer loads files into the store through a Pipeline: bare reports
// (JSON or gzip), mail messages, and mbox files, each recognised by its
// content, never by its name.
type Importer struct {
	Pipeline *Pipeline
	// StoreBatch stores many reports in one transaction ((*db.DB).StoreReports
	// adapted), with ids and duplicate flags in order. It must be
	// idempotent like Store.StoreReport. Nil stores one by one.
	StoreBatch BatchStore
	BatchSize  int // reports per batch; 0 means DefaultImportBatch
	Workers    int // files read and parsed at once; 0 means 2
	// Progress, when set, is called with the bytes of each file done.
	Progress func(bytes int64)
}

// InputResult is what became of one input: a file, or one message of an
// mbox file (Ref is then "path#N", N counting from 1).
type InputResult struct {
	Ref     string
	Outcome Outcome
}

// ImportStats sums an import.
type ImportStats struct {
	Inputs     int // files and mbox messages read
	Reports    int // valid reports found
	New        int
	Duplicates int
	Refused    int // refused reports or parts
	// RefusedInputs lists each input with something refused, and why.
	RefusedInputs []InputResult
	// Skipped counts the files that are not reports by name or content
	// (a README, a licence, code); SkippedInputs says which and why.
	Skipped       int
	SkippedInputs []InputResult
}

// Import reads the files and stores their reports. The error is for a
// failure of the store (the import stopped; running it again completes it,
// nothing is stored twice) or a cancelled context; refusals are in the
// stats.
func (im *Importer) Import(ctx context.Context, files []File) (ImportStats, error) {
	var st ImportStats
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	workers := im.Workers
	if workers <= 0 {
		workers = 2
	}
	jobs := make(chan File)
	parsedCh := make(chan *parsed, maxPendingInputs)
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var firstErr error
	fail := func(err error) {
		errMu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		errMu.Unlock()
		cancel()
	}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range jobs {
				if err := im.readFile(ctx, f, parsedCh); err != nil {
					fail(err)
					return
				}
				if im.Progress != nil {
					im.Progress(f.Size)
				}
			}
		}()
	}
	go func() {
		defer close(parsedCh)
		defer wg.Wait()
		defer close(jobs)
		for _, f := range files {
			select {
			case jobs <- f:
			case <-ctx.Done():
				return
			}
		}
	}()
	batch := im.BatchSize
	if batch <= 0 {
		batch = DefaultImportBatch
	}
	// Batches are stored by a few transactions at once: PostgreSQL does
	// most of the work and overlaps one batch's round trips and commit
	// with another's inserts.
	batches := make(chan []*parsed)
	var stMu sync.Mutex
	var storers sync.WaitGroup
	for range storeWorkers {
		storers.Add(1)
		go func() {
			defer storers.Done()
			for b := range batches {
				var part ImportStats
				err := im.storeBatch(ctx, b, &part)
				stMu.Lock()
				st.add(part)
				stMu.Unlock()
				if err != nil {
					fail(err)
				}
			}
		}()
	}
	var pending []*parsed
	nReports, nBytes := 0, 0
	flush := func() {
		if len(pending) == 0 {
			return
		}
		select {
		case batches <- pending:
		case <-ctx.Done():
		}
		pending, nReports, nBytes = nil, 0, 0
	}
	for pr := range parsedCh {
		if ctx.Err() != nil {
			continue // drain so that the readers finish
		}
		if pr.skip != "" {
			stMu.Lock()
			st.Skipped++
			st.SkippedInputs = append(st.SkippedInputs, InputResult{Ref: pr.ref, Outcome: Outcome{Reason: pr.skip}})
			stMu.Unlock()
			continue
		}
		pending = append(pending, pr)
		nReports += len(pr.received)
		nBytes += len(pr.raw)
		if nReports >= batch || nBytes >= maxPendingBytes {
			flush()
		}
	}
	flush()
	close(batches)
	storers.Wait()
	errMu.Lock()
	defer errMu.Unlock()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	sort.Slice(st.RefusedInputs, func(i, j int) bool { return refLess(st.RefusedInputs[i].Ref, st.RefusedInputs[j].Ref) })
	sort.Slice(st.SkippedInputs, func(i, j int) bool { return refLess(st.SkippedInputs[i].Ref, st.SkippedInputs[j].Ref) })
	return st, firstErr
}

func (s *ImportStats) add(o ImportStats) {
	s.Inputs += o.Inputs
	s.Reports += o.Reports
	s.New += o.New
	s.Duplicates += o.Duplicates
	s.Refused += o.Refused
	s.RefusedInputs = append(s.RefusedInputs, o.RefusedInputs...)
}

// refLess orders "path#N" refs by path, then message number.
func refLess(a, b string) bool {
	pa, na, _ := strings.Cut(a, "#")
	pb, nb, _ := strings.Cut(b, "#")
	if pa != pb {
		return pa < pb
	}
	x, _ := strconv.Atoi(na)
	y, _ := strconv.Atoi(nb)
	return x < y
}

// storeBatch stores the reports of several inputs in one transaction
// (Pipeline.storeGroup) and counts what became of each.
func (im *Importer) storeBatch(ctx context.Context, prs []*parsed, st *ImportStats) error {
	outs, err := im.Pipeline.storeGroup(ctx, im.StoreBatch, prs)
	if err != nil {
		return err
	}
	for i, out := range outs {
		st.Inputs++
		st.Reports += out.Reports
		st.New += out.New
		st.Duplicates += out.Duplicates
		st.Refused += out.Refused
		if out.Refused > 0 || out.Quarantined {
			st.RefusedInputs = append(st.RefusedInputs, InputResult{Ref: prs[i].ref, Outcome: out})
		}
	}
	return nil
}

// readFile sniffs a file and sends its parsed inputs: one for a report or
// a message, one per message for an mbox file.
func (im *Importer) readFile(ctx context.Context, f File, out chan<- *parsed) error {
	p := im.Pipeline
	lim := p.Limits
	if lim.MaxMessageBytes <= 0 {
		lim.MaxMessageBytes = reports.DefaultMaxMessageBytes
	}
	send := func(pr *parsed) error {
		select {
		case out <- pr:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	refuse := func(ref, reason string) error {
		return send(&parsed{raw: nil, src: reports.SourceFile, ref: ref, broken: []string{reason}, whole: reason})
	}
	if f.Skip != "" {
		return send(&parsed{src: reports.SourceFile, ref: f.Path, skip: f.Skip})
	}
	fh, err := os.Open(f.Path)
	if err != nil {
		return refuse(f.Path, fmt.Sprintf("opening: %v", err))
	}
	defer fh.Close()
	var (
		br  *bufio.Reader
		raw []byte
	)
	if f.Size >= 0 && f.Size < smallFile {
		// Nearly every report file: read whole into a buffer of its size
		// (a 64 KiB bufio.Reader per file cost more than parsing a 1 KiB
		// report).
		if raw, err = readSmall(fh, f.Size, lim.MaxMessageBytes); err != nil {
			return refuse(f.Path, err.Error())
		}
		if bytes.HasPrefix(raw, []byte("From ")) {
			br = bufio.NewReader(bytes.NewReader(raw))
		}
	} else {
		br = bufio.NewReaderSize(fh, 64<<10)
		if head, _ := br.Peek(5); string(head) != "From " {
			if raw, err = readSmall(br, -1, lim.MaxMessageBytes); err != nil {
				return refuse(f.Path, err.Error())
			}
			br = nil
		}
	}
	if br != nil {
		return readMbox(ctx, br, f.Path, lim.MaxMessageBytes, func(ref string, raw []byte, problem string) error {
			if problem != "" {
				return refuse(ref, problem)
			}
			pr, err := p.parseMessage(ctx, raw, reports.SourceFile, ref)
			if err != nil {
				return err
			}
			return send(pr)
		})
	}
	if reports.IsReportData(raw) {
		pr := p.parseReport(raw, reports.SourceFile, f.Path, Remote{})
		if len(pr.received) == 1 && len(raw) >= 2 && raw[0] == 0x1f && raw[1] == 0x8b {
			// The file is the gzip the report came in: the store keeps it
			// as the raw report rather than compressing the JSON again.
			pr.received[0].Gzip = raw
		}
		return send(pr)
	}
	if !looksLikeMessage(raw) {
		return send(&parsed{src: reports.SourceFile, ref: f.Path, skip: "neither a report (JSON, gzip, zip) nor a mail message (no header on the first line)"})
	}
	pr, err := p.parseMessage(ctx, raw, reports.SourceFile, f.Path)
	if err != nil {
		return err
	}
	return send(pr)
}

// notReportName says why a file found in a directory is not a report by
// its name ("" when it may be one): documentation, licences and code that
// sit beside report collections (a corpus's SOURCES.md).
func notReportName(name string) string {
	lower := strings.ToLower(name)
	base := strings.TrimSuffix(lower, filepath.Ext(lower))
	switch base {
	case "readme", "license", "licence", "copying", "notice", "sources", "authors", "changelog":
		return "not a report by its name"
	}
	switch filepath.Ext(lower) {
	case ".md", ".markdown", ".rst", ".html", ".htm", ".pdf", ".png", ".jpg", ".svg",
		".go", ".py", ".rs", ".js", ".ts", ".sh", ".c", ".h", ".java", ".rb",
		".yml", ".yaml", ".toml", ".ini", ".cfg", ".csv", ".license":
		return "not a report by its name (" + filepath.Ext(lower) + ")"
	}
	return ""
}

// looksLikeMessage says whether raw starts like an RFC 5322 message: a
// header field name (printable ASCII but the colon) and a colon on the
// first line.
func looksLikeMessage(raw []byte) bool {
	line, _, _ := bytes.Cut(raw, []byte("\n"))
	i := bytes.IndexByte(line, ':')
	if i <= 0 {
		return false
	}
	for _, c := range line[:i] {
		if c < 33 || c > 126 {
			return false
		}
	}
	return true
}

// smallFile is the size below which an input file is read whole at once.
const smallFile = 1 << 20

// readSmall reads r to its end, at most limit bytes; size, when known
// (not negative), sizes the buffer. The error says what to refuse.
func readSmall(r io.Reader, size, limit int64) ([]byte, error) {
	var buf bytes.Buffer
	if size >= 0 {
		buf.Grow(int(min(size, limit)) + bytes.MinRead)
	}
	n, err := buf.ReadFrom(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading: %v", err)
	}
	if n > limit {
		return nil, fmt.Errorf("file over %d bytes", limit)
	}
	return buf.Bytes(), nil
}

// readMbox splits an mbox file (RFC 4155: each message starts with a
// "From " line) and calls fn for each message with its ref "path#N". Lines
// quoted as ">From " (mboxrd) are unquoted. A message over limit bytes is
// skipped to its end and reported with a problem, as is a read error.
func readMbox(ctx context.Context, r *bufio.Reader, path string, limit int64, fn func(ref string, raw []byte, problem string) error) error {
	var (
		buf     bytes.Buffer
		n       int
		tooBig  bool
		started bool
	)
	emit := func() error {
		if !started {
			return nil
		}
		ref := path + "#" + strconv.Itoa(n)
		problem := ""
		if tooBig {
			problem = fmt.Sprintf("message over %d bytes", limit)
		}
		err := fn(ref, bytes.Clone(buf.Bytes()), problem)
		buf.Reset()
		tooBig = false
		return err
	}
	prevBlank := true
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// An over-long line: keep reading it in pieces.
			if !tooBig && int64(buf.Len()+len(line)) <= limit {
				buf.Write(line)
			} else {
				tooBig = true
			}
			prevBlank = false
			continue
		}
		if len(line) > 0 {
			if prevBlank && bytes.HasPrefix(line, []byte("From ")) {
				if err := emit(); err != nil {
					return err
				}
				started = true
				n++
				prevBlank = false
				continue
			}
			body := line
			if bytes.HasPrefix(body, []byte(">")) && bytes.HasPrefix(bytes.TrimLeft(body, ">"), []byte("From ")) {
				body = body[1:]
			}
			if !tooBig && int64(buf.Len()+len(body)) <= limit {
				buf.Write(body)
			} else {
				tooBig = true
			}
			prevBlank = len(bytes.TrimRight(line, "\r\n")) == 0
		}
		if err == io.EOF {
			return emit()
		}
		if err != nil {
			return fn(path+"#"+strconv.Itoa(max(n, 1)), nil, fmt.Sprintf("reading: %v", err))
		}
	}
}
