package main

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// Chart geometry, in SVG user units (pixels).
const (
	chartCols   = 2
	panelW      = 480
	panelH      = 270
	plotLeft    = 58 // room for y labels
	plotRight   = 12
	plotTop     = 34 // room for the panel title
	plotBottom  = 62 // room for client counts and the pgone ratio lines
	headerH     = 92
	chartMargin = 10
)

var targetColors = map[string]string{
	"direct":            "#6b7280",
	"pgbouncer":         "#2563eb",
	"pgpool":            "#f59e0b",
	"pgone":             "#16a34a",
	"pgone-session":     "#16a34a",
	"pgone-transaction": "#0d9488",
}

var extraColors = []string{"#0d9488", "#9333ea", "#dc2626", "#0891b2"}

func colorOf(name string, i int) string {
	if c, ok := targetColors[name]; ok {
		return c
	}
	return extraColors[i%len(extraColors)]
}

// renderChart draws one panel per workload: grouped bars of the median
// metric (TPS; idle clients: KiB per held client) by client count and
// target. A failed cell is a red ✕ on the baseline.
func renderChart(r *Report) string {
	ws := r.workloadOrder()
	rows := (len(ws) + chartCols - 1) / chartCols
	width := chartCols*panelW + 2*chartMargin
	height := headerH + rows*panelH + chartMargin
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Helvetica, Arial, sans-serif">`+"\n", width, height, width, height)
	p(`<rect width="100%%" height="100%%" fill="#ffffff"/>` + "\n")
	m := r.Meta
	p(`<text x="%d" y="24" font-size="18" font-weight="bold">pgone benchmark (%s run), %s</text>`+"\n", chartMargin, esc(m.Mode), esc(m.Date.Format("2006-01-02 15:04 MST")))
	p(`<text x="%d" y="42" font-size="11" fill="#374151">%s</text>`+"\n", chartMargin, esc(fmt.Sprintf(
		"%d cores, %.0f GiB; PostgreSQL %s, PgBouncer %s, pgpool-II %s; pgone %s",
		m.Machine.Cores, m.Machine.MemGiB, versionNumber(m.Versions.Postgres), versionNumber(m.Versions.Pgbouncer),
		versionNumber(m.Versions.Pgpool), strings.SplitN(m.Versions.Pgone, ",", 2)[0])))
	p(`<text x="%d" y="57" font-size="11" fill="#374151">%s</text>`+"\n", chartMargin, esc(fmt.Sprintf(
		"median of %d interleaved runs per bar, %s each; pool size %d for every pooler; red ✕ = failed (see the .md); green under each group: %s's ratios",
		m.Reps, m.Duration, m.PoolSize, strings.Join(r.pgoneTargets()[:min(1, len(r.pgoneTargets()))], ""))))
	// Legend.
	x := chartMargin
	for i, t := range r.Targets {
		p(`<rect x="%d" y="68" width="12" height="12" fill="%s"/>`, x, colorOf(t.Name, i))
		p(`<text x="%d" y="78" font-size="12">%s</text>`+"\n", x+16, esc(t.Name))
		x += 24 + 8*len(t.Name)
	}
	for i, w := range ws {
		ox := chartMargin + (i%chartCols)*panelW
		oy := headerH + (i/chartCols)*panelH
		drawPanel(&b, r, w, ox, oy)
	}
	p("</svg>\n")
	return b.String()
}

func drawPanel(b *strings.Builder, r *Report, w *Workload, ox, oy int) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	var cells []*CellResult
	for i := range r.Cells {
		if r.Cells[i].w == w {
			cells = append(cells, &r.Cells[i])
		}
	}
	unit := w.Unit
	if unit == "" {
		unit = "TPS"
	}
	if w.Metric == MetricHeld {
		unit = "clients held at once"
	}
	title := w.Title
	if i := strings.Index(title, " ("); i > 0 {
		title = title[:i]
	}
	p(`<g transform="translate(%d,%d)">`+"\n", ox, oy)
	p(`<rect x="2" y="2" width="%d" height="%d" fill="none" stroke="#e5e7eb"/>`+"\n", panelW-4, panelH-4)
	p(`<text x="10" y="20" font-size="13" font-weight="bold">%s</text>`, esc(title))
	p(`<text x="%d" y="20" font-size="11" fill="#6b7280" text-anchor="end">%s</text>`+"\n", panelW-10, esc(unit))

	plotW := panelW - plotLeft - plotRight
	plotH := panelH - plotTop - plotBottom
	maxV := 0.0
	for _, c := range cells {
		for _, t := range r.Targets {
			if s := c.summary(t.Name); s.OK {
				maxV = math.Max(maxV, s.value(w.Metric))
			}
		}
	}
	top, step := niceScale(maxV)
	for v := 0.0; v <= top+step/2; v += step {
		y := plotTop + plotH - int(v/top*float64(plotH))
		p(`<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#e5e7eb"/>`, plotLeft, plotLeft+plotW, y, y)
		p(`<text x="%d" y="%d" font-size="10" fill="#6b7280" text-anchor="end">%s</text>`+"\n", plotLeft-4, y+3, shortNum(v))
	}
	groupW := float64(plotW) / float64(max(1, len(cells)))
	barW := groupW * 0.8 / float64(max(1, len(r.Targets)))
	pgones := r.pgoneTargets()
	for gi, c := range cells {
		gx := float64(plotLeft) + groupW*float64(gi) + groupW*0.1
		for ti, t := range r.Targets {
			s := c.summary(t.Name)
			bx := gx + barW*float64(ti)
			base := plotTop + plotH
			if !s.OK {
				p(`<text x="%.1f" y="%d" font-size="14" fill="#dc2626" text-anchor="middle" font-weight="bold">✕</text>`+"\n", bx+barW/2, base-2)
				continue
			}
			v := s.value(w.Metric)
			h := 0.0
			if top > 0 {
				h = v / top * float64(plotH)
			}
			p(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s</title></rect>`,
				bx, float64(base)-h, barW-1, h, colorOf(t.Name, ti), esc(fmt.Sprintf("%s, %d clients: %s %s", t.Name, c.Clients, shortNum(v), unit)))
			p(`<text x="%.1f" y="%.1f" font-size="8" fill="#111827" text-anchor="middle">%s</text>`+"\n", bx+barW/2, float64(base)-h-3, barLabel(v))
		}
		cx := float64(plotLeft) + groupW*(float64(gi)+0.5)
		label := fmt.Sprintf("%d clients", c.Clients)
		if c.Clients == 1 {
			label = "1 client"
		}
		p(`<text x="%.1f" y="%d" font-size="11" text-anchor="middle">%s</text>`+"\n", cx, plotTop+plotH+15, label)
		if len(pgones) > 0 {
			s := c.summary(pgones[0])
			for i, line := range []string{
				"×direct " + ratio(s, c.summary("direct"), w.Metric),
				"×pgbouncer " + ratio(s, c.summary("pgbouncer"), w.Metric),
			} {
				p(`<text x="%.1f" y="%d" font-size="9" fill="#15803d" text-anchor="middle">%s</text>`+"\n", cx, plotTop+plotH+28+11*i, esc(line))
			}
		}
	}
	p(`<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#9ca3af"/>`+"\n", plotLeft, plotLeft+plotW, plotTop+plotH, plotTop+plotH)
	p("</g>\n")
}

// niceScale returns an axis top and step (1, 2 or 5 times a power of ten)
// with about four steps that cover maxV.
func niceScale(maxV float64) (top, step float64) {
	if maxV <= 0 {
		return 1, 0.25
	}
	raw := maxV / 4
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, f := range []float64{1, 2, 2.5, 5, 10} {
		step = f * mag
		if step >= raw {
			break
		}
	}
	top = math.Ceil(maxV/step) * step
	return top, step
}

// barLabel is shortNum with at most four characters, for narrow bars.
func barLabel(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1e4:
		return fmt.Sprintf("%.0fk", v/1e3)
	case a >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return shortNum(v)
}

// shortNum formats v with three significant digits and a k/M suffix.
func shortNum(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1e6:
		return trimZero(fmt.Sprintf("%.3g", v/1e6)) + "M"
	case a >= 1e4:
		return trimZero(fmt.Sprintf("%.3g", v/1e3)) + "k"
	case a >= 100 || v == 0:
		return fmt.Sprintf("%.0f", v)
	default:
		return trimZero(fmt.Sprintf("%.3g", v))
	}
}

func trimZero(s string) string {
	if strings.Contains(s, ".") && !strings.ContainsAny(s, "e") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

func esc(s string) string { return html.EscapeString(s) }
