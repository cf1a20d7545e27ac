package reports_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/tlsrpt/tlsrpt/reports"
)

// TestAttachmentErrWrapsSentinel: Attachment.Err is documented to wrap
// ErrMalformed or ErrTooLarge. A report part whose base64 is broken (a
// bit flip in transit, a truncated mail) must say so too; found by
// TestParseTorture.
func TestAttachmentErrWrapsSentinel(t *testing.T) {
	for _, body := range []string{"!!!!not base64!!!!", "H4sI\x00\x01", "*"} {
		mail := "From: reports@sender.example\r\nSubject: Report Domain: example.net\r\nMIME-Version: 1.0\r\n" +
			"Content-Type: multipart/report; report-type=tlsrpt; boundary=B\r\n\r\n" +
			"--B\r\nContent-Type: text/plain\r\n\r\nreport\r\n" +
			"--B\r\nContent-Type: application/tlsrpt+gzip\r\nContent-Transfer-Encoding: base64\r\n\r\n" + body + "\r\n--B--\r\n"
		m, err := reports.ReadMessage(strings.NewReader(mail), reports.Limits{})
		if err != nil {
			if !errors.Is(err, reports.ErrMalformed) && !errors.Is(err, reports.ErrNoReport) {
				t.Errorf("ReadMessage(base64 %q) error %v wraps no sentinel", body, err)
			}
			continue
		}
		for _, a := range m.Attachments {
			if a.Report == nil && !errors.Is(a.Err, reports.ErrMalformed) && !errors.Is(a.Err, reports.ErrTooLarge) {
				t.Errorf("ReadMessage(base64 %q) attachment error %q wraps neither ErrMalformed nor ErrTooLarge", body, a.Err)
			}
		}
	}
}
