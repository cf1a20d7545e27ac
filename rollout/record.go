package rollout

import (
	"fmt"
	"strings"
)

// Extension is a name=value field of an MTA-STS or TLS-RPT TXT record that
// tlsrpt does not interpret (RFC 8461 §3.1 sts-extension, RFC 8460 §3
// tlsrpt-extension); it is kept so a record prints back as it was.
type Extension struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Record is the MTA-STS TXT record published at _mta-sts.<domain>
// (RFC 8461 §3.1).
type Record struct {
	ID         string      `json:"id"`
	Extensions []Extension `json:"extensions,omitempty"`
}

// String returns the TXT record value: "v=STSv1; id=<id>" and the
// extensions, each after "; ".
func (r Record) String() string {
	var b strings.Builder
	b.WriteString("v=STSv1; id=" + r.ID)
	for _, e := range r.Extensions {
		b.WriteString("; " + e.Name + "=" + e.Value)
	}
	return b.String()
}

// IsSTSRecord reports whether a TXT value is meant as an MTA-STS record:
// RFC 8461 §3.1 tells senders to discard records that do not start with
// "v=STSv1" and count the rest, valid or not.
func IsSTSRecord(txt string) bool {
	return startsWithVersion(txt, "v=STSv1")
}

// startsWithVersion reports whether txt starts with the version field v
// followed by a separator or the end.
func startsWithVersion(txt, v string) bool {
	rest, ok := strings.CutPrefix(txt, v)
	return ok && (rest == "" || rest[0] == ';' || rest[0] == ' ' || rest[0] == '\t')
}

// ParseRecord parses an MTA-STS TXT record value (the strings of one
// record already concatenated). ErrNotSTSRecord means the value does not
// start with v=STSv1 and is not meant as one; ErrInvalidRecord means it is
// but does not follow RFC 8461 §3.1.
func ParseRecord(txt string) (Record, error) {
	if !IsSTSRecord(txt) {
		return Record{}, fmt.Errorf("parsing mta-sts record %q: %w", txt, ErrNotSTSRecord)
	}
	fields, err := splitRecordFields(txt, len("v=STSv1"))
	if err != nil {
		return Record{}, fmt.Errorf("parsing mta-sts record %q: %w: %w", txt, ErrInvalidRecord, err)
	}
	var r Record
	seenID := false
	for _, f := range fields {
		if f.Name == "id" {
			// The first id counts; RFC 8461 §3.2 says so for repeated
			// fields and senders apply it to the record too.
			if !seenID {
				if err := ValidID(f.Value); err != nil {
					return Record{}, fmt.Errorf("parsing mta-sts record %q: %w: %w", txt, ErrInvalidRecord, err)
				}
				r.ID = f.Value
				seenID = true
			}
			continue
		}
		r.Extensions = append(r.Extensions, f)
	}
	if !seenID {
		return Record{}, fmt.Errorf("parsing mta-sts record %q: %w: no id", txt, ErrInvalidRecord)
	}
	return r, nil
}

// splitRecordFields reads the "; name=value" fields that follow the
// version field, which ends at offset start. The grammar is the same for
// RFC 8461 §3.1 and RFC 8460 §3: separators of *WSP ";" *WSP, at least one
// field, an optional trailing separator, names of 1-32 letters, digits,
// "_", "-", "." and values of printable ASCII without "=", ";" and space.
func splitRecordFields(txt string, start int) ([]Extension, error) {
	var out []Extension
	rest := txt[start:]
	for {
		rest = strings.TrimLeft(rest, " \t")
		if rest == "" {
			break
		}
		if rest[0] != ';' {
			return nil, fmt.Errorf("expected ';' at %q", rest)
		}
		rest = strings.TrimLeft(rest[1:], " \t")
		if rest == "" {
			break
		}
		end := strings.IndexAny(rest, "; \t")
		if end < 0 {
			end = len(rest)
		}
		field := rest[:end]
		rest = rest[end:]
		name, value, ok := strings.Cut(field, "=")
		if !ok {
			return nil, fmt.Errorf("field %q has no '='", field)
		}
		if !validFieldName(name) {
			return nil, fmt.Errorf("invalid field name %q", name)
		}
		if value == "" {
			return nil, fmt.Errorf("field %s has an empty value", name)
		}
		for i := 0; i < len(value); i++ {
			if c := value[i]; c < 0x21 || c > 0x7e || c == '=' {
				return nil, fmt.Errorf("field %s holds %q", name, c)
			}
		}
		out = append(out, Extension{Name: name, Value: value})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no field after the version")
	}
	return out, nil
}
