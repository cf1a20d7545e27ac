package dovetest

import (
	"fmt"
	"net"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// Dial opens a plaintext client to addr, logged in as user with password
// unless the server greets with PREAUTH.
func Dial(addr, user, password string) (*imapclient.Client, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	c := imapclient.New(conn, nil)
	if err := c.WaitGreeting(); err != nil {
		c.Close()
		return nil, fmt.Errorf("greeting: %w", err)
	}
	if c.State() == imap.ConnStateNotAuthenticated {
		if err := c.Login(user, password).Wait(); err != nil {
			c.Close()
			return nil, fmt.Errorf("login: %w", err)
		}
	}
	return c, nil
}

// Append adds msgs to mailbox, creating it when missing. The APPENDs are
// pipelined in groups, so filling 10,000 messages takes seconds.
func Append(c *imapclient.Client, mailbox string, msgs [][]byte) error {
	c.Create(mailbox, nil).Wait() // already there is fine
	const group = 100
	for len(msgs) > 0 {
		n := min(group, len(msgs))
		var cmds []*imapclient.AppendCommand
		for _, m := range msgs[:n] {
			cmd := c.Append(mailbox, int64(len(m)), nil)
			if _, err := cmd.Write(m); err != nil {
				return fmt.Errorf("appending: %w", err)
			}
			if err := cmd.Close(); err != nil {
				return fmt.Errorf("appending: %w", err)
			}
			cmds = append(cmds, cmd)
		}
		for _, cmd := range cmds {
			if _, err := cmd.Wait(); err != nil {
				return fmt.Errorf("appending: %w", err)
			}
		}
		msgs = msgs[n:]
	}
	return nil
}

// Count returns the number of messages in each of the folders (0 for a
// missing folder).
func Count(c *imapclient.Client, folders ...string) (map[string]int, error) {
	out := map[string]int{}
	for _, f := range folders {
		st, err := c.Status(f, &imap.StatusOptions{NumMessages: true}).Wait()
		if err != nil {
			out[f] = 0
			continue
		}
		out[f] = int(*st.NumMessages)
	}
	return out, nil
}

// Bodies returns the raw messages of a folder.
func Bodies(c *imapclient.Client, folder string) ([][]byte, error) {
	sel, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return nil, err
	}
	if sel.NumMessages == 0 {
		return nil, nil
	}
	var set imap.SeqSet
	set.AddRange(1, sel.NumMessages)
	bufs, err := c.Fetch(set, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, b := range bufs {
		for _, s := range b.BodySection {
			out = append(out, s.Bytes)
		}
	}
	return out, nil
}
