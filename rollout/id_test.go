package rollout

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestNewID(t *testing.T) {
	loc := time.FixedZone("CEST", 2*3600)
	got := NewID(time.Date(2026, 7, 1, 14, 5, 9, 999, loc))
	if want := "20260701T120509Z"; got != want {
		t.Errorf("NewID = %q, want %q", got, want)
	}
	if err := ValidID(got); err != nil {
		t.Errorf("ValidID(NewID) = %v", err)
	}
}

func TestValidID(t *testing.T) {
	for _, id := range []string{"1", "20160831085700Z", "abcXYZ019", strings.Repeat("a", 32)} {
		if err := ValidID(id); err != nil {
			t.Errorf("ValidID(%q) = %v, want nil", id, err)
		}
	}
	for _, id := range []string{"", strings.Repeat("a", 33), "2016-08-31", "id 1", "idé", "a_b", "a;b"} {
		if err := ValidID(id); !errors.Is(err, ErrInvalidID) {
			t.Errorf("ValidID(%q) = %v, want ErrInvalidID", id, err)
		}
	}
}
