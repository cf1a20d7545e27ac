package rollout

import (
	"slices"
	"time"
)

// DropDays removes the facts of the UTC days in [from, to): the watch
// drops the days of its trend window before a version went live, so a
// rise it reports happened under that version (docs/publishing.md, "The
// watch"). The mode history and the excluded counts stay.
func (f *Facts) DropDays(from, to time.Time) {
	in := func(d time.Time) bool { return !d.Before(from) && d.Before(to) }
	f.Days = slices.DeleteFunc(f.Days, func(x DayFacts) bool { return in(x.Day) })
	f.Reporters = slices.DeleteFunc(f.Reporters, func(x ReporterDay) bool { return in(x.Day) })
	f.Failures = slices.DeleteFunc(f.Failures, func(x FailureCount) bool { return in(x.Day) })
	f.Senders = slices.DeleteFunc(f.Senders, func(x SenderFailures) bool { return in(x.Day) })
	f.Examples = slices.DeleteFunc(f.Examples, func(x FailureExample) bool { return in(x.Day) })
}
