package ui

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Day is one day of a domain's traffic as the charts draw it.
type Day struct {
	Day      time.Time
	Sessions int64 // successful + failed
	Failures int64
}

// FailureRate is Failures/Sessions, 0 for a day without sessions.
func (d Day) FailureRate() float64 { return fraction(d.Failures, d.Sessions) }

// fraction is part/whole in [0, 1]: 0 without a whole, 1 when part is
// larger (totals saturated at int64's maximum can leave it so), never NaN
// or Inf, which would break the chart's coordinates.
func fraction(part, whole int64) float64 {
	if whole <= 0 || part <= 0 {
		return 0
	}
	return min(float64(part)/float64(whole), 1)
}

// maxChartDays bounds the days a chart draws: the longest window the
// domain page offers is a year.
const maxChartDays = 366

// Bar is one day's column of a DailyChart, in SVG user units.
type Bar struct {
	X, Y, W, H float64
	// Title is the tooltip (an SVG <title>, no script needed).
	Title string
}

// DailyChart is a server-rendered chart of daily sessions (bars, left
// axis) and failure rate (line, right axis). The template draws it as SVG;
// every number here is computed, nothing comes from a report unescaped.
type DailyChart struct {
	Width, Height float64
	// Plot area.
	Left, Top, Right, Bottom float64
	Bars                     []Bar
	// RatePoints is the polyline of the failure rate ("x,y x,y ...").
	RatePoints string
	// Failure markers: days with at least one failure.
	Marks []Bar
	// Axis labels.
	MaxSessionsLabel string
	MaxRateLabel     string
	FirstDay         string
	LastDay          string
	Empty            bool
}

// NewDailyChart lays out days (oldest first) on a width×height canvas.
func NewDailyChart(days []Day, width, height float64) DailyChart {
	if len(days) > maxChartDays {
		days = days[len(days)-maxChartDays:]
	}
	c := DailyChart{Width: width, Height: height, Left: 56, Top: 12, Right: width - 56, Bottom: height - 28}
	if len(days) == 0 {
		c.Empty = true
		return c
	}
	var maxSessions int64
	var maxRate float64
	for _, d := range days {
		maxSessions = max(maxSessions, d.Sessions)
		maxRate = max(maxRate, d.FailureRate())
	}
	if maxSessions == 0 {
		maxSessions = 1
	}
	// The rate axis never goes below 0.1%: the verdict's threshold, so a
	// clean domain shows a flat line at the bottom rather than noise
	// magnified to full height.
	maxRate = max(maxRate, 0.001)
	plotW := c.Right - c.Left
	plotH := c.Bottom - c.Top
	step := plotW / float64(len(days))
	barW := step * 0.8
	pts := make([]string, 0, len(days))
	for i, d := range days {
		x := c.Left + float64(i)*step
		h := plotH * float64(d.Sessions) / float64(maxSessions)
		title := fmt.Sprintf("%s: %s sessions, %s failed (%s)",
			d.Day.Format(time.DateOnly), Num(d.Sessions), Num(d.Failures), Percent(d.FailureRate()))
		c.Bars = append(c.Bars, Bar{X: round2(x + (step-barW)/2), Y: round2(c.Bottom - h), W: round2(barW), H: round2(h), Title: title})
		y := c.Bottom - plotH*d.FailureRate()/maxRate
		pts = append(pts, coord(x+step/2)+","+coord(y))
		if d.Failures > 0 {
			c.Marks = append(c.Marks, Bar{X: round2(x + step/2), Y: round2(y), Title: title})
		}
	}
	c.RatePoints = strings.Join(pts, " ")
	c.MaxSessionsLabel = Num(maxSessions)
	c.MaxRateLabel = Percent(maxRate)
	c.FirstDay = days[0].Day.Format(time.DateOnly)
	c.LastDay = days[len(days)-1].Day.Format(time.DateOnly)
	return c
}

// Sparkline is the small failure-rate trend of the overview.
type Sparkline struct {
	Width, Height float64
	Points        string
	Empty         bool
	Title         string
}

// NewSparkline draws the failure rate of days (oldest first).
func NewSparkline(days []Day, width, height float64) Sparkline {
	if len(days) > maxChartDays {
		days = days[len(days)-maxChartDays:]
	}
	s := Sparkline{Width: width, Height: height}
	if len(days) < 2 {
		s.Empty = true
		return s
	}
	maxRate := 0.001
	for _, d := range days {
		maxRate = max(maxRate, d.FailureRate())
	}
	pts := make([]string, 0, len(days))
	for i, d := range days {
		x := 1 + (width-2)*float64(i)/float64(len(days)-1)
		y := height - 1 - (height-2)*d.FailureRate()/maxRate
		pts = append(pts, coord(x)+","+coord(y))
	}
	s.Points = strings.Join(pts, " ")
	s.Title = fmt.Sprintf("failure rate, %s to %s, peak %s", days[0].Day.Format(time.DateOnly),
		days[len(days)-1].Day.Format(time.DateOnly), Percent(maxRate))
	return s
}

func round2(f float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(f, 'f', 2, 64), 64)
	return v
}

func coord(f float64) string { return strconv.FormatFloat(f, 'f', 2, 64) }

// Num formats n with thin thousands separators: 1234567 → "1,234,567".
func Num(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Percent formats a ratio as a percentage with enough digits to tell
// 0.05% from 0: the verdict's threshold is 0.1%.
func Percent(r float64) string {
	p := r * 100
	switch {
	case p == 0:
		return "0%"
	case p < 0.01:
		return "<0.01%"
	case p < 1:
		return strconv.FormatFloat(p, 'f', 2, 64) + "%"
	default:
		return strconv.FormatFloat(p, 'f', 1, 64) + "%"
	}
}
