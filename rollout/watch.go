package rollout

// The post-enforce watch (docs/verdict.md, "After enforce: the watch";
// docs/publishing.md, "The watch"): for a domain in enforce, Evaluate runs
// the same engine but, instead of blockers, reports a rise in failures
// against the days before as the warning "regression" and proposes the
// rollback: the same mx list in mode testing with a new id and the short
// testing max_age, so that senders refetch it and stop refusing mail.
// Retirement (mode none) is a decision for a person and is not proposed.

// regression is the post-enforce watch: the last RisingDays days against
// the RegressionBaseDays before.
func (e *evaluation) regression() *Finding {
	return e.rise(WarningRegression, e.ev.Windows.Trend, e.ev.Windows.RegressionBase)
}
