package pgbouncer

import (
	"fmt"
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"
)

// omap is a YAML mapping that keeps insertion order, so the output reads
// in the order of configs/pgone.yaml rather than alphabetically.
type omap struct{ node *yaml.Node }

func newMap() omap { return omap{&yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}} }

// set puts key: v, replacing an earlier value; comment, if any, goes at the
// end of the line.
func (m omap) set(key string, v *yaml.Node, comment string) {
	if comment != "" {
		v.LineComment = comment
	}
	for i := 0; i+1 < len(m.node.Content); i += 2 {
		if m.node.Content[i].Value == key {
			m.node.Content[i+1] = v
			return
		}
	}
	m.node.Content = append(m.node.Content, keyNode(key), v)
}

// child returns the mapping under key, creating it.
func (m omap) child(key string) omap {
	for i := 0; i+1 < len(m.node.Content); i += 2 {
		if m.node.Content[i].Value == key {
			return omap{m.node.Content[i+1]}
		}
	}
	c := newMap()
	m.node.Content = append(m.node.Content, keyNode(key), c.node)
	return c
}

func (m omap) has(key string) bool {
	for i := 0; i < len(m.node.Content); i += 2 {
		if m.node.Content[i].Value == key {
			return true
		}
	}
	return false
}

func (m omap) empty() bool { return len(m.node.Content) == 0 }

// keyNode quotes keys YAML would read as syntax (the "*" database).
func keyNode(k string) *yaml.Node {
	n := strNode(k)
	if k == "*" {
		n.Style = yaml.DoubleQuotedStyle
	}
	return n
}

func strNode(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

func intNode(n int) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(n)}
}

func durationNode(d time.Duration) *yaml.Node { return strNode(formatDuration(d)) }

func seqNode(items []string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: yaml.FlowStyle}
	for _, s := range items {
		n.Content = append(n.Content, strNode(s))
	}
	return n
}

// formatDuration writes d in the largest whole unit ("10m", "1h", "500ms"),
// as configs/pgone.yaml does.
func formatDuration(d time.Duration) string {
	switch {
	case d == 0:
		return "0s"
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d%time.Second == 0:
		return fmt.Sprintf("%ds", d/time.Second)
	case d%time.Millisecond == 0:
		return fmt.Sprintf("%dms", d/time.Millisecond)
	}
	return d.String()
}
