package ingest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// quarantineHeadBytes is how much of an oversized message is kept in the
// quarantine table: enough to see who sent it and what it claims to be.
const quarantineHeadBytes = 64 << 10

// processWorkers is how many messages of a batch are parsed at once
// (MIME, gzip, JSON, DKIM): enough to use the cores while the FETCH
// streams in.
const processWorkers = 4

// msgOutcome is what became of one message.
type msgOutcome struct {
	stored, duplicates, refused int
	// quarantined: the message holds no valid report and goes to the
	// quarantine folder.
	quarantined bool
}

// messageProcessor is the part of the pipeline the poller drives.
type messageProcessor interface {
	// maxMessageBytes is the size above which a message is not read whole.
	maxMessageBytes() int64
	// parse reads a message and verifies its DKIM signature. Its error
	// means the message cannot be decided now (a DKIM key lookup failed
	// temporarily): leave it for a later pass.
	parse(ctx context.Context, raw []byte, ref string) (*parsed, error)
	// store stores the reports of the messages (in one transaction where
	// the store can) and quarantines those with none, returning what
	// became of each. An error means the store failed: retry later.
	store(ctx context.Context, prs []*parsed) ([]msgOutcome, error)
	// refuse quarantines what could be read of a message that cannot be
	// parsed (too large, no body) with the reason.
	refuse(ctx context.Context, raw []byte, reason, ref string) error
}

// sync is one full pass: every message after the last UID recorded is
// read, stored, and moved; the recorded UID advances batch by batch.
func (p *Poller) sync(ctx context.Context, s *session) (Stats, error) {
	var total Stats
	key := p.cfg.MailboxKey()
	s.deadline(commandTimeout)
	sel, err := s.c.Select(p.cfg.Mailbox, nil).Wait()
	if err != nil {
		return total, fmt.Errorf("selecting %s: %w", p.cfg.Mailbox, err)
	}
	validity, last, err := p.state.IngestState(ctx, key)
	if err != nil {
		return total, fmt.Errorf("%w: reading the ingest state: %w", errStore, err)
	}
	if validity != sel.UIDValidity {
		if validity != 0 {
			// RFC 3501 §2.3.1.1: the UIDs mean nothing any more. Read
			// everything again; the store's dedupe keeps it exactly once.
			p.log.Warn("UIDVALIDITY changed, rescanning the whole mailbox", "old", validity, "new", sel.UIDValidity)
		}
		validity, last = sel.UIDValidity, 0
	}
	if sel.NumMessages == 0 {
		return total, nil
	}
	s.deadline(commandTimeout)
	crit := &imap.SearchCriteria{UID: []imap.UIDSet{{imap.UIDRange{Start: imap.UID(last + 1), Stop: 0}}}}
	found, err := s.c.UIDSearch(crit, nil).Wait()
	if err != nil {
		return total, fmt.Errorf("searching %s for new messages: %w", p.cfg.Mailbox, err)
	}
	var uids []imap.UID
	for _, u := range found.AllUIDs() {
		// "n:*" always matches the highest UID, even below n.
		if uint32(u) > last {
			uids = append(uids, u)
		}
	}
	slices.Sort(uids)
	// stuck: a message was left for a later pass; the recorded UID must
	// stay below it even when later batches complete.
	stuck := false
	for len(uids) > 0 {
		n := min(len(uids), p.cfg.BatchSize)
		st, upTo, err := p.batch(ctx, s, validity, uids[:n])
		total.add(st)
		if upTo > last && !stuck {
			if serr := p.state.SetIngestState(ctx, key, validity, upTo); serr != nil && err == nil {
				err = fmt.Errorf("%w: recording UID %d: %w", errStore, upTo, serr)
			}
			last = upTo
		}
		if upTo < uint32(uids[n-1]) {
			stuck = true
		}
		if err != nil {
			return total, err
		}
		uids = uids[n:]
	}
	return total, nil
}

// fetched is one message of a batch.
type fetched struct {
	uid     imap.UID
	pr      *parsed // parsed, waiting to be stored
	size    int64
	outcome msgOutcome
	done    bool  // stored (or quarantined): it can go to its folder
	err     error // left in the mailbox for a later pass
}

// groupBytes bounds the raw bytes of the parsed messages waiting to be
// stored together: a batch of big messages is stored in several groups.
const groupBytes = 16 << 20

// batch fetches, stores and moves one batch. Messages are parsed by
// processWorkers goroutines while the FETCH streams in; their reports are
// stored in one transaction per group, and only then are the messages
// moved. upTo is the highest UID up to which every message of the batch
// is in its final folder.
func (p *Poller) batch(ctx context.Context, s *session, validity uint32, uids []imap.UID) (Stats, uint32, error) {
	var st Stats
	opts := &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}}
	s.deadline(commandTimeout)
	cmd := s.c.Fetch(imap.UIDSetNum(uids...), opts)

	var (
		all     []*fetched
		group   []*fetched // parsed or being parsed, not yet stored
		pending int64      // raw bytes in group
		failed  error      // the store failed: nothing more is stored
		readErr error      // the connection broke while reading a message
		wg      sync.WaitGroup
		slots   = make(chan struct{}, processWorkers)
	)
	flush := func() {
		wg.Wait()
		if failed == nil {
			failed = p.storeGroup(ctx, group)
		}
		group, pending = group[:0], 0
	}
	for {
		s.deadline(commandTimeout)
		msg := cmd.Next()
		if msg == nil {
			break
		}
		if failed != nil {
			continue // drain the rest of the FETCH; nothing more is stored
		}
		uid, raw, head, size, err := p.readMessage(msg)
		if err != nil {
			// The connection broke in the middle of a body. go-imap must
			// not be asked to read that literal again (draining it races
			// with its reader): drop the connection and leave the
			// command. What was stored is moved by the next session.
			readErr = err
			s.c.Close()
			break
		}
		if uid == 0 {
			continue // a FETCH response for a message we did not ask for
		}
		f := &fetched{uid: uid, size: size}
		all = append(all, f)
		ref := fmt.Sprintf("%s;UIDVALIDITY=%d/;UID=%d", p.cfg.MailboxKey(), validity, uid)
		if head != nil || raw == nil {
			// Too large to read, or a body the server did not give
			// (NIL): kept in the quarantine folder and table with what
			// is known. The note names the UID so that two such
			// messages stay two quarantine entries.
			reason := fmt.Sprintf("message of %d bytes is larger than the limit of %d bytes; its first %d bytes are kept",
				size, p.pipe.maxMessageBytes(), min(size, quarantineHeadBytes))
			if head == nil {
				reason = "the IMAP server returned no body for the message"
				head = []byte("[tlsrpt: " + reason + " " + ref + "]\r\n")
			}
			if err := p.pipe.refuse(ctx, head, reason, ref); err != nil {
				f.err, failed = err, err
				continue
			}
			p.log.Warn("Message quarantined unread", "uid", uid, "bytes", size, "reason", reason)
			f.outcome.quarantined, f.done = true, true
			continue
		}
		group = append(group, f)
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			f.pr, f.err = p.pipe.parse(ctx, raw, ref)
			if f.err != nil {
				// A DKIM key that cannot be fetched now: this message
				// waits, the others go on.
				p.log.Warn("Message left in the mailbox for a later pass", "uid", uid, "error", f.err)
			}
		}()
		if pending += int64(len(raw)); pending >= groupBytes {
			flush()
		}
	}
	flush()
	var fetchErr error
	if readErr != nil {
		fetchErr = fmt.Errorf("fetching messages: %w", readErr)
	} else if err := cmd.Close(); err != nil {
		fetchErr = fmt.Errorf("fetching messages: %w", err)
	}

	// Move what was stored, even when the batch failed half-way: those
	// messages are done.
	var processed, quarantine []imap.UID
	state := make(map[imap.UID]bool, len(all)) // true: done, false: left for later
	for _, f := range all {
		if !f.done {
			st.Deferred++
			state[f.uid] = false
			continue
		}
		state[f.uid] = true
		st.Messages++
		st.Stored += f.outcome.stored
		st.Duplicates += f.outcome.duplicates
		st.Refused += f.outcome.refused
		if f.outcome.quarantined {
			st.Quarantined++
			quarantine = append(quarantine, f.uid)
		} else {
			processed = append(processed, f.uid)
		}
	}
	p.count(st)
	moveErr := s.move(p, processed, s.processed)
	if err := s.move(p, quarantine, s.quarantine); moveErr == nil {
		moveErr = err
	}

	// The recorded UID advances over every message in its final folder,
	// and over UIDs the server did not return (expunged meanwhile by
	// another client) when the FETCH itself completed, up to the first
	// message left for later.
	var upTo uint32
	if moveErr == nil {
		for _, u := range uids {
			done, seen := state[u]
			if done || (!seen && failed == nil && fetchErr == nil) {
				upTo = uint32(u)
				continue
			}
			break
		}
	}
	if failed != nil {
		failed = fmt.Errorf("%w: %w", errStore, failed)
	}
	return st, upTo, errors.Join(failed, fetchErr, moveErr)
}

// storeGroup stores the parsed messages of a group and records their
// outcomes. Its error means the store failed: none of the group is done.
func (p *Poller) storeGroup(ctx context.Context, group []*fetched) error {
	var prs []*parsed
	var fs []*fetched
	for _, f := range group {
		if f.err == nil && f.pr != nil {
			prs, fs = append(prs, f.pr), append(fs, f)
		}
	}
	if len(prs) == 0 {
		return nil
	}
	outs, err := p.pipe.store(ctx, prs)
	if err != nil {
		for _, f := range fs {
			f.err = err
		}
		return err
	}
	for i, f := range fs {
		f.outcome, f.done = outs[i], true
		f.pr = nil // let the raw bytes go
	}
	return nil
}

// readMessage reads the UID and the body of one FETCH response. A body
// within the limit comes back whole in raw; a larger one only as its
// first bytes in head, with a line naming its size and hash; the rest is
// read through the hash, never into memory. raw and head are both nil when
// the server sent no body.
func (p *Poller) readMessage(msg *imapclient.FetchMessageData) (uid imap.UID, raw, head []byte, size int64, err error) {
	limit := p.pipe.maxMessageBytes()
	for {
		item := msg.Next()
		if item == nil {
			break
		}
		switch it := item.(type) {
		case imapclient.FetchItemDataUID:
			uid = it.UID
		case imapclient.FetchItemDataBodySection:
			if it.Literal == nil {
				continue // NIL: raw stays nil
			}
			size = it.Literal.Size()
			if size > limit {
				// The rest streams through a hash, so that the
				// quarantine entry (keyed by the hash of its bytes) is
				// one per distinct message, not one per distinct head.
				buf := make([]byte, min(size, quarantineHeadBytes))
				if _, err := io.ReadFull(it.Literal, buf); err != nil {
					return uid, nil, nil, size, fmt.Errorf("reading message: %w", err)
				}
				h := sha256.New()
				h.Write(buf)
				if _, err := io.Copy(h, it.Literal); err != nil {
					return uid, nil, nil, size, fmt.Errorf("reading message: %w", err)
				}
				head = fmt.Appendf(buf, "\r\n\r\n[tlsrpt: message cut at %d of %d bytes; sha256 of the whole message %x]\r\n", len(buf), size, h.Sum(nil))
				continue
			}
			raw = make([]byte, size)
			if _, err := io.ReadFull(it.Literal, raw); err != nil {
				return uid, nil, nil, size, fmt.Errorf("reading message: %w", err)
			}
		}
	}
	return uid, raw, head, size, nil
}

// move puts messages in their final folder: MOVE (RFC 6851) where the
// server has it, else COPY, \Deleted and UID EXPUNGE (UIDPLUS, RFC 4315),
// which never expunges another client's deleted messages. Without UIDPLUS
// the messages are copied and flagged \Seen in place. With MarkSeenOnly
// they are only flagged \Seen.
func (s *session) move(p *Poller, uids []imap.UID, folder string) error {
	if len(uids) == 0 {
		return nil
	}
	set := imap.UIDSetNum(uids...)
	s.deadline(commandTimeout)
	if p.cfg.MarkSeenOnly {
		return s.flag(set, imap.FlagSeen)
	}
	if s.caps.Has(imap.CapMove) || s.caps.Has(imap.CapIMAP4rev2) {
		if _, err := s.c.Move(set, folder).Wait(); err != nil {
			return fmt.Errorf("moving %d messages to %s: %w", len(uids), folder, err)
		}
		return nil
	}
	if _, err := s.c.Copy(set, folder).Wait(); err != nil {
		return fmt.Errorf("copying %d messages to %s: %w", len(uids), folder, err)
	}
	if !s.caps.Has(imap.CapUIDPlus) {
		if !p.warnedNoUIDPlus.Swap(true) {
			p.log.Warn("IMAP server has neither MOVE nor UIDPLUS: messages are copied to their folder and flagged \\Seen, not removed from the mailbox")
		}
		return s.flag(set, imap.FlagSeen)
	}
	if err := s.flag(set, imap.FlagDeleted); err != nil {
		return err
	}
	if err := s.c.UIDExpunge(set).Close(); err != nil {
		return fmt.Errorf("expunging %d messages copied to %s: %w", len(uids), folder, err)
	}
	return nil
}

func (s *session) flag(set imap.UIDSet, f imap.Flag) error {
	store := &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{f}}
	if err := s.c.Store(set, store, nil).Close(); err != nil {
		return fmt.Errorf("flagging messages %s: %w", f, err)
	}
	return nil
}
