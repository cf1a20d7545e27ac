package rollout

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// LintProblem is one thing wrong with a policy file, at its line (0: the
// file as a whole).
type LintProblem struct {
	Line     int    `json:"line"`
	Severity string `json:"severity"` // SeverityError or SeverityWarning
	Message  string `json:"message"`
}

func (p LintProblem) String() string {
	if p.Line == 0 {
		return fmt.Sprintf("%s: %s", p.Severity, p.Message)
	}
	return fmt.Sprintf("line %d: %s: %s", p.Line, p.Severity, p.Message)
}

// knownKeys are the keys of an RFC 8461 §3.2 policy.
var knownKeys = []string{"version", "mode", "max_age", "mx"}

// LintPolicy checks a policy file someone has, as a sender would read it
// and as RFC 8461 §3.2 and the usual advice want it, and names every
// problem with its line, where ParsePolicy stops at the first: errors are
// what makes senders refuse the policy (or read it otherwise than meant),
// warnings what works but goes against the RFC's text or the advice (LF
// line ends, unknown or repeated keys, a short max_age).
func LintPolicy(body string) []LintProblem {
	var out []LintProblem
	add := func(line int, sev string, format string, args ...any) {
		out = append(out, LintProblem{Line: line, Severity: sev, Message: fmt.Sprintf(format, args...)})
	}
	if len(body) > maxPolicySize {
		add(0, SeverityError, "%d bytes: senders read at most %d", len(body), maxPolicySize)
		return out
	}
	if !utf8.ValidString(body) {
		add(0, SeverityError, "not valid UTF-8 text")
	}
	if strings.HasPrefix(body, "\ufeff") {
		add(1, SeverityError, "starts with a byte order mark: the first key reads as %q", "\ufeff"+strings.SplitN(body[3:], ":", 2)[0])
	}
	lines := strings.Split(body, "\n")
	crlf, lf := 0, 0
	seen := map[string]int{}
	var mode Mode
	var maxAge int64 = -1
	mxCount := 0
	firstKey := ""
	for i, line := range lines {
		n := i + 1
		last := i == len(lines)-1
		if strings.HasSuffix(line, "\r") {
			line = strings.TrimSuffix(line, "\r")
			crlf++
		} else if !last {
			lf++
		}
		if strings.ContainsRune(line, '\r') {
			add(n, SeverityError, "a carriage return inside the line")
		}
		if strings.TrimLeft(line, " \t") == "" {
			continue
		}
		key, value, ok := strings.Cut(line, ":")
		if !ok {
			add(n, SeverityError, "no colon: want \"key: value\"")
			continue
		}
		if !validFieldName(key) {
			add(n, SeverityError, "invalid key %q%s", key, suggestKey(key))
			continue
		}
		if firstKey == "" {
			firstKey = key
		}
		value = strings.TrimRight(strings.TrimLeft(value, " \t"), " \t")
		if value == "" {
			add(n, SeverityError, "empty value for %s", key)
			continue
		}
		if strings.IndexFunc(value, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }) >= 0 {
			add(n, SeverityError, "control character in the value of %s", key)
			continue
		}
		prev, dup := seen[key]
		if dup && key != "mx" {
			add(n, SeverityWarning, "%s repeated (first on line %d): senders read only the first", key, prev)
		} else {
			seen[key] = n
		}
		switch key {
		case "version":
			if value != "STSv1" {
				add(n, SeverityError, "version %q, want STSv1", value)
			}
		case "mode":
			m := Mode(value)
			if !m.Valid() {
				add(n, SeverityError, "mode %q, want none, testing or enforce%s", value, suggestMode(value))
			}
			if !dup {
				mode = m
			}
		case "max_age":
			v, err := parseMaxAge(value)
			if err != nil {
				add(n, SeverityError, "%v (0..%d seconds, at most 10 digits)", err, MaxMaxAge)
				continue
			}
			if dup {
				continue
			}
			maxAge = v
			if v < 86400 {
				add(n, SeverityWarning, "max_age %d is under a day: senders fetch the policy again and again, and a short cache protects little", v)
			}
		case "mx":
			mxCount++
			if err := ValidMXPattern(value); err != nil {
				add(n, SeverityError, "%v", err)
			}
		default:
			add(n, SeverityWarning, "unknown key %q: senders ignore it%s", key, suggestKey(key))
		}
	}
	for _, k := range []string{"version", "mode", "max_age"} {
		if _, ok := seen[k]; !ok {
			add(0, SeverityError, "no %s line", k)
		}
	}
	if firstKey != "" && firstKey != "version" {
		add(seen[firstKey], SeverityWarning, "the first key is %s: put version first, as RFC 8461 §3.2's example and every generator do", firstKey)
	}
	if mxCount == 0 && (mode == ModeTesting || mode == ModeEnforce) {
		add(0, SeverityError, "mode %s without any mx line: senders refuse the policy", mode)
	}
	if mode == ModeEnforce && maxAge >= 86400 && maxAge < 604800 {
		add(seen["max_age"], SeverityWarning, "enforce with max_age %d: the usual value is 604800 (a week) or more once enforce has held", maxAge)
	}
	switch {
	case crlf > 0 && lf > 0:
		add(0, SeverityWarning, "mixed line ends: %d CRLF and %d LF; use CRLF throughout", crlf, lf)
	case lf > 0:
		add(0, SeverityWarning, "lines end in LF: senders accept it (RFC 8461 erratum 6253), but §3.2 writes CRLF and some older senders expect it")
	}
	return out
}

// suggestKey names the known key a typo most likely meant.
func suggestKey(k string) string {
	l := strings.ToLower(strings.ReplaceAll(k, "-", "_"))
	for _, want := range knownKeys {
		if l == want || l == want+"s" || strings.TrimSuffix(l, "s") == want {
			return fmt.Sprintf(" (did you mean %q?)", want)
		}
	}
	if l == "maxage" || l == "max_ages" {
		return ` (did you mean "max_age"?)`
	}
	return ""
}

// suggestMode names the mode a typo most likely meant.
func suggestMode(v string) string {
	l := strings.ToLower(v)
	for _, m := range []Mode{ModeEnforce, ModeTesting, ModeNone} {
		if l == string(m) || strings.HasPrefix(l, string(m)[:4]) {
			return fmt.Sprintf(" (did you mean %q?)", m)
		}
	}
	return ""
}
