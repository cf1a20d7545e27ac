//go:build race

package reports_test

const raceEnabled = true
