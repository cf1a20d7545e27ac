package db_test

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
)

// TestPolicyModeMatchesSQL holds the store's mode of an sts policy (Go,
// the mode rollup's key) to tlsrpt_policy_mode of migration 011, the
// SQL function whose backfills made the rollup rows the store adds to:
// for tricky policies and for thousands of random ones built from the
// characters that matter.
func TestPolicyModeMatchesSQL(t *testing.T) {
	d := dbtest.New(t)
	ctx := context.Background()
	cases := [][]string{
		nil,
		{},
		{"version: STSv1", "mode: enforce", "mx: mail.example.com", "max_age: 86400"},
		{"version: STSv1", "mode: testing"},
		{"MODE:ENFORCE"},
		{"  \tMode \t: \t Testing  "},
		{"mode:"},
		{"mode: ", "mode: enforce"},
		{"xmode: enforce", "mode: none"},
		{"mode enforce", "mode: testing"},
		{"version: STSv1\nmode: enforce\nmx: a.example"},
		{"version: STSv1\r\nmode: enforce\r\n"},
		{"mode:enforce2"},
		{"mode: en-force"},
		{"mode: énforce", "mode: testing"},
		{"mode: enforce", "mode: testing"},
		{"\nmode: testing"},
		{"mode\t:\tnone"},
		{"mo de: enforce"},
		{"mode: \u212aelvin"},
		{"\u212a", "MODE: ſtrict"},
		{"mode:: enforce"},
	}
	fixed := len(cases)
	rng := rand.New(rand.NewPCG(8461, 8460))
	const alphabet = "modeMODE:: \t\t\n\n\renforcingTESTINGxX-1é\u212aſ"
	runes := []rune(alphabet)
	for range 3000 {
		n := 1 + rng.IntN(3)
		strs := make([]string, n)
		for i := range strs {
			var b strings.Builder
			if rng.IntN(2) == 0 {
				b.WriteString([]string{"mode:", " Mode :", "MODE:\t", "mode "}[rng.IntN(4)])
			}
			for range rng.IntN(14) {
				b.WriteRune(runes[rng.IntN(len(runes))])
			}
			strs[i] = strings.ReplaceAll(b.String(), "\x00", "")
		}
		cases = append(cases, strs)
	}
	// One round trip: each case's strings joined with line ends, as
	// tlsrpt_policy_mode itself joins them, and passed as one element.
	joined := make([]string, len(cases))
	for i, c := range cases {
		joined[i] = strings.Join(c, "\n")
	}
	rows, err := d.Pool.Query(ctx, `SELECT i, tlsrpt_policy_mode(ARRAY[s]) FROM unnest($1::text[]) WITH ORDINALITY AS u(s, i) ORDER BY i`, joined)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var i int
		var want string
		if err := rows.Scan(&i, &want); err != nil {
			t.Fatal(err)
		}
		if got := db.PolicyMode(cases[i-1]); got != want {
			t.Errorf("PolicyMode(%q) = %q, tlsrpt_policy_mode = %q", cases[i-1], got, want)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n != len(cases) {
		t.Fatalf("compared %d cases, want %d", n, len(cases))
	}
	// The array form: several strings, as the store passes them.
	for _, c := range cases[:fixed] {
		var want string
		if err := d.Pool.QueryRow(ctx, `SELECT tlsrpt_policy_mode($1::text[])`, c).Scan(&want); err != nil {
			t.Fatalf("tlsrpt_policy_mode(%q): %v", c, err)
		}
		if got := db.PolicyMode(c); got != want {
			t.Errorf("PolicyMode(%q) = %q, tlsrpt_policy_mode = %q", c, got, want)
		}
	}
}
