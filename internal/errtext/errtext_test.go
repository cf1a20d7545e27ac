package errtext

import (
	"errors"
	"fmt"
	"testing"
)

func TestPlain(t *testing.T) {
	sentinel := errors.New("publish: nothing to change")
	for _, tc := range []struct {
		err  error
		want string
	}{
		{sentinel, "nothing to change"},
		{fmt.Errorf("rollback of example.com: %w: the new policy would equal the live one", sentinel), "rollback of example.com: nothing to change: the new policy would equal the live one"},
		{fmt.Errorf("adding: %w", errors.New("db: policy id used before")), "adding: policy id used before"},
		{errors.New("api: x: rollout: y"), "x: y"},
		{nil, ""},
	} {
		if got := Plain(tc.err); got != tc.want {
			t.Errorf("Plain(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
	if !Is(fmt.Errorf("w: %w", sentinel), errors.New("other"), sentinel) || Is(sentinel, errors.New("other")) {
		t.Error("Is does not find the wrapped sentinel, or finds another")
	}
}
