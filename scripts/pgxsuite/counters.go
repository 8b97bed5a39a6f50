package main

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// counterLineRE matches one Prometheus text-format sample.
var counterLineRE = regexp.MustCompile(`^(pgone_[a-z0-9_]+)\{([^}]*)\} ([0-9.e+]+)$`)

// counterSummary condenses pgone's /metrics into one line: requests by
// route and reason (the split), pins by cause, errors by source and class.
// Other metrics are left out.
func counterSummary(metrics string) string {
	keep := map[string][]string{
		"pgone_route_requests_total": {"route", "reason"},
		"pgone_proxy_pins_total":     {"cause"},
		"pgone_proxy_errors_total":   {"source", "class"},
	}
	titles := map[string]string{
		"pgone_route_requests_total": "routed",
		"pgone_proxy_pins_total":     "pins",
		"pgone_proxy_errors_total":   "errors",
	}
	sums := map[string]map[string]float64{}
	for _, line := range strings.Split(metrics, "\n") {
		m := counterLineRE.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil || keep[m[1]] == nil {
			continue
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil || v == 0 {
			continue
		}
		labels := parseLabels(m[2])
		var parts []string
		for _, l := range keep[m[1]] {
			parts = append(parts, labels[l])
		}
		if sums[m[1]] == nil {
			sums[m[1]] = map[string]float64{}
		}
		sums[m[1]][strings.Join(parts, "/")] += v
	}
	var out []string
	for _, name := range []string{"pgone_route_requests_total", "pgone_proxy_pins_total", "pgone_proxy_errors_total"} {
		if len(sums[name]) == 0 {
			continue
		}
		var keys []string
		for k := range sums[name] {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var items []string
		for _, k := range keys {
			items = append(items, fmt.Sprintf("%s %.0f", k, sums[name][k]))
		}
		out = append(out, titles[name]+": "+strings.Join(items, ", "))
	}
	return strings.Join(out, "; ")
}

// parseLabels reads `a="x",b="y"`; label values here never hold quotes.
func parseLabels(s string) map[string]string {
	labels := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if ok {
			labels[k] = strings.Trim(v, `"`)
		}
	}
	return labels
}
