package rollout

import (
	"bufio"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// The SMTP side of the STARTTLS probe: commands and bounded replies.

// smtpReply is one SMTP reply: its code and the text of each line.
type smtpReply struct {
	code  int
	lines []string
}

func (r smtpReply) String() string {
	return strconv.Itoa(r.code) + " " + strings.Join(r.lines, " / ")
}

// readReply reads one possibly multi-line reply (RFC 5321 §4.2.1), at
// most smtpMaxLines lines of at most smtpMaxLine octets.
func readReply(r *bufio.Reader) (smtpReply, error) {
	var rep smtpReply
	for n := 0; ; n++ {
		if n == smtpMaxLines {
			return rep, fmt.Errorf("reply longer than %d lines", smtpMaxLines)
		}
		line, err := readLine(r)
		if err != nil {
			return rep, err
		}
		if len(line) < 3 || (len(line) > 3 && line[3] != ' ' && line[3] != '-') {
			return rep, fmt.Errorf("malformed reply line %q", clip(line))
		}
		code, err := strconv.Atoi(line[:3])
		if err != nil || code < 200 || code > 599 || (n > 0 && code != rep.code) {
			return rep, fmt.Errorf("malformed reply line %q", clip(line))
		}
		rep.code = code
		text := ""
		if len(line) > 4 {
			text = line[4:]
		}
		rep.lines = append(rep.lines, text)
		if len(line) == 3 || line[3] == ' ' {
			return rep, nil
		}
	}
}

// readLine reads a line ended by LF (CRLF is what RFC 5321 asks), at
// most smtpMaxLine octets.
func readLine(r *bufio.Reader) (string, error) {
	var b []byte
	for {
		chunk, more, err := r.ReadLine()
		if err != nil {
			return "", err
		}
		b = append(b, chunk...)
		if len(b) > smtpMaxLine {
			return "", fmt.Errorf("reply line longer than %d octets", smtpMaxLine)
		}
		if !more {
			return strings.ToValidUTF8(string(b), "?"), nil
		}
	}
}

// clip shortens peer text quoted in an error.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// command sends one command line and reads the reply.
func command(conn net.Conn, r *bufio.Reader, line string) (smtpReply, error) {
	if _, err := conn.Write([]byte(line + "\r\n")); err != nil {
		return smtpReply{}, err
	}
	return readReply(r)
}

// quit ends the session politely; its answer does not matter.
func quit(conn net.Conn, r *bufio.Reader) {
	_, _ = command(conn, r, "QUIT")
}
