package ui

import (
	"sort"
	"strconv"
	"strings"
	"time"
)

// DaysPoint is a certificate's days left at one probe.
type DaysPoint struct {
	At   time.Time
	Days int
}

// DaysSeries is one certificate's days left over the probes, oldest first:
// an MX address or the policy host.
type DaysSeries struct {
	Label  string
	Points []DaysPoint
}

// DaysLine is one series as the template draws it.
type DaysLine struct {
	Label  string
	Points string // "x,y x,y ..."
	Last   string // the last days left, for the legend
	Class  string // days-ok, days-warning, days-error by the last value
	LabelY float64
}

// DaysChart is a server-rendered chart of the days left of each watched
// certificate over time, with a line at 14 days (the alert) and 30 (the
// warning). Days above DaysBarMax are drawn at the top.
type DaysChart struct {
	Width, Height            float64
	Left, Top, Right, Bottom float64
	Lines                    []DaysLine
	AlertY, WarnY            float64
	MaxLabel                 string
	FirstDay, LastDay        string
	Empty                    bool
}

// maxDaysLines bounds the lines of one chart (10 MX hosts × 4 addresses
// and the policy host is the probe's own bound).
const maxDaysLines = 41

// NewDaysChart lays out series on a width×height canvas.
func NewDaysChart(series []DaysSeries, width, height float64) DaysChart {
	c := DaysChart{Width: width, Height: height, Left: 40, Top: 10, Right: width - 260, Bottom: height - 24, MaxLabel: strconv.Itoa(DaysBarMax)}
	var first, last time.Time
	for _, s := range series {
		for _, p := range s.Points {
			if first.IsZero() || p.At.Before(first) {
				first = p.At
			}
			if p.At.After(last) {
				last = p.At
			}
		}
	}
	if first.IsZero() {
		c.Empty = true
		return c
	}
	span := last.Sub(first).Seconds()
	if span <= 0 {
		span = 1
	}
	y := func(days int) float64 {
		d := min(max(days, 0), DaysBarMax)
		return round2(c.Bottom - (c.Bottom-c.Top)*float64(d)/DaysBarMax)
	}
	c.AlertY, c.WarnY = y(14), y(DaysBarWarn)
	sorted := append([]DaysSeries(nil), series...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Label < sorted[j].Label })
	if len(sorted) > maxDaysLines {
		sorted = sorted[:maxDaysLines]
	}
	for i, s := range sorted {
		if len(s.Points) == 0 {
			continue
		}
		pts := make([]string, 0, len(s.Points))
		for _, p := range s.Points {
			x := c.Left + (c.Right-c.Left)*p.At.Sub(first).Seconds()/span
			pts = append(pts, coord(x)+","+coord(y(p.Days)))
		}
		d := s.Points[len(s.Points)-1].Days
		class := "days-ok"
		switch {
		case d < 14:
			class = "days-error"
		case d < DaysBarWarn:
			class = "days-warning"
		}
		c.Lines = append(c.Lines, DaysLine{Label: s.Label, Points: strings.Join(pts, " "), Last: strconv.Itoa(d), Class: class,
			LabelY: round2(c.Top + 12*float64(i+1))})
	}
	c.FirstDay, c.LastDay = first.Format(time.DateOnly), last.Format(time.DateOnly)
	return c
}
