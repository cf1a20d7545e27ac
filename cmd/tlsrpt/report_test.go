package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/reports"
)

// TestReportCommand excludes, includes and deletes a stored report from
// the command line and reads the domain's daily totals after each step;
// refusals exit 3 and usage errors 2, and every change is in the audit
// log as the cli's.
func TestReportCommand(t *testing.T) {
	ctx := context.Background()
	url := dbtest.NewURL(t, true)
	d, err := db.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	// One clock: the store's and the command's are both the real one.
	day := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -1)
	rep := &reports.Report{OrganizationName: "Example Org", ReportID: "cli-1", ContactInfo: "tls@sender.example",
		DateRange: reports.DateRange{Start: day, End: day.Add(24*time.Hour - time.Second)},
		Policies: []reports.PolicyResult{{Policy: reports.Policy{Type: "sts", Domain: "example.com", MXHosts: []string{"mx.example.com"},
			Strings: []string{"version: STSv1", "mode: testing", "mx: mx.example.com", "max_age: 86400"}},
			Summary: reports.Summary{TotalSuccessfulSessionCount: 42}}}}
	raw, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	id, _, err := d.StoreReport(ctx, reports.Received{Report: rep, JSON: raw, Source: reports.SourceFile, ReceivedAt: day.Add(30 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	sessions := func() int64 {
		t.Helper()
		days, err := d.DomainSeries(ctx, "example.com", day, day.AddDate(0, 0, 1))
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, x := range days {
			n += x.Sessions()
		}
		return n
	}
	if n := sessions(); n != 42 {
		t.Fatalf("sessions before = %d, want 42", n)
	}
	sid := strconv.FormatInt(id, 10)
	steps := []struct {
		args     []string
		code     int
		out      string // in stdout (code 0) or stderr
		sessions int64
	}{
		{[]string{"exclude", sid}, 2, "--reason is required", 42},
		{[]string{"exclude", sid, "--reason", strings.Repeat("x", 501)}, 2, "longer than 500", 42},
		{[]string{"exclude", "abc", "--reason", "x"}, 2, "not a report id", 42},
		{[]string{"frobnicate", sid}, 2, "unknown action", 42},
		{[]string{"exclude", "999999", "--reason", "x"}, 3, "there is no report 999999", 42},
		{[]string{"include", sid}, 3, "is not excluded", 42},
		{[]string{"exclude", sid, "--reason", "forged"}, 0, `report ` + sid + ` ("cli-1" from "Example Org") excluded`, 0},
		{[]string{"exclude", sid, "--reason", "again"}, 3, "excluded already", 0},
		{[]string{"include", sid}, 0, "included again", 42},
		{[]string{"delete", sid}, 2, "add --yes", 42},
		{[]string{"delete", sid, "--yes", "--reason", "duplicate"}, 0, "deleted", 0},
		{[]string{"delete", sid, "--yes"}, 3, "there is no report", 0},
	}
	for _, s := range steps {
		args := append(append([]string{"report"}, s.args...), "--db", url)
		code, out, errOut := runStoreCmd(t, args...)
		where := out
		if s.code != 0 {
			where = errOut
		}
		if code != s.code || !strings.Contains(where, s.out) {
			t.Errorf("tlsrpt report %s = %d, %q, %q; want %d with %q", strings.Join(s.args, " "), code, out, errOut, s.code, s.out)
		}
		if n := sessions(); n != s.sessions {
			t.Errorf("after tlsrpt report %s: %d sessions, want %d", strings.Join(s.args, " "), n, s.sessions)
		}
	}
	log, err := d.AuditLog(ctx, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := len(log) - 1; i >= 0; i-- {
		var d map[string]any
		if err := json.Unmarshal(log[i].Detail.(json.RawMessage), &d); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s %s id=%v report_id=%v organization=%v reporter=%v reason=%v",
			log[i].Actor, log[i].Action, d["id"], d["report_id"], d["organization"], d["reporter"], d["reason"]))
	}
	tail := " id=" + sid + " report_id=cli-1 organization=Example Org reporter=sender.example reason="
	want := []string{"cli report.exclude" + tail + "forged", "cli report.include" + tail + "forged", "cli report.delete" + tail + "duplicate"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("audit log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestReporterRuleCommand adds, lists and deletes reporter rules from the
// command line.
func TestReporterRuleCommand(t *testing.T) {
	url := dbtest.NewURL(t, true)
	run := func(args ...string) (int, string, string) {
		t.Helper()
		return runStoreCmd(t, append(append([]string{"reporter-rule"}, args...), "--db", url)...)
	}
	for _, args := range [][]string{
		{"add", "--reporter", "relay.example"},
		{"add", "--reporter", "relay.example", "--host-domain", "a.example", "--network", "192.0.2.0/24"},
		{"add", "--host-domain", "a.example"},
		{"add", "--reporter", "relay.example", "--network", "nonsense"},
		{"add", "--reporter", "", "--network", "192.0.2.0/24"},
		{"delete", "x"},
		{"list", "extra"},
	} {
		if code, _, errOut := run(args...); code != 2 {
			t.Errorf("reporter-rule %s = %d (%s), want 2", strings.Join(args, " "), code, errOut)
		}
	}
	code, out, errOut := run("add", "--reporter", "relay.example", "--network", "192.0.2.0/24", "--note", "our relay")
	if code != 0 || !strings.Contains(out, "relay.example posts from network 192.0.2.0/24") {
		t.Fatalf("add network rule = %d, %q, %q", code, out, errOut)
	}
	code, out, errOut = run("add", "--reporter", "mail.sender.example", "--host-domain", "mx.relay-host.example")
	if code != 0 || !strings.Contains(out, "sender.example posts from hosts under relay-host.example") {
		t.Fatalf("add host rule = %d, %q, %q", code, out, errOut)
	}
	code, out, _ = run("list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 4 || !strings.HasPrefix(lines[0], "shipped\thost\tmicrosoft.com\thosts under outlook.com") ||
		!strings.Contains(lines[2], "\tnetwork\trelay.example\tnetwork 192.0.2.0/24\t\"our relay\"") ||
		!strings.Contains(lines[3], "\thost\tsender.example\thosts under relay-host.example\t") {
		t.Fatalf("list = %d:\n%s", code, out)
	}
	first, _, _ := strings.Cut(lines[2], "\t")
	if code, out, errOut := run("delete", first); code != 0 || !strings.Contains(out, "deleted rule "+first) {
		t.Errorf("delete %s = %d, %q, %q", first, code, out, errOut)
	}
	if code, _, errOut := run("delete", first); code != 3 || !strings.Contains(errOut, "there is no rule") {
		t.Errorf("delete %s again = %d, %q; want 3", first, code, errOut)
	}
	d, err := db.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	log, err := d.AuditLog(context.Background(), "", 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := len(log) - 1; i >= 0; i-- {
		got = append(got, log[i].Actor+" "+log[i].Action)
	}
	if strings.Join(got, ", ") != "cli reporter_rule.add, cli reporter_rule.add, cli reporter_rule.delete" {
		t.Errorf("audit log = %v", got)
	}
}
