package tuner

import (
	"math"
	"time"
)

// Sketch is a bounded quantile sketch of durations: logarithmic buckets
// (each about 10% wider than the one before, so a quantile is within 5%
// of the truth) from 1µs to about 2 minutes, the rest clamped to the
// ends. Its size is fixed (sketchBuckets counters) whatever it counts.
// The zero value is empty. Not safe for concurrent use: its owner locks.
type Sketch struct {
	counts [sketchBuckets]uint32
	n      uint64
	sum    time.Duration
}

const (
	sketchGamma   = 1.1
	sketchBuckets = 196 // 1.1^195 µs ≈ 120 s
	sketchMin     = time.Microsecond
)

var sketchLogGamma = math.Log(sketchGamma)

// bucketOf is the bucket of d.
func bucketOf(d time.Duration) int {
	if d <= sketchMin {
		return 0
	}
	i := int(math.Ceil(math.Log(float64(d)/float64(sketchMin)) / sketchLogGamma))
	return min(i, sketchBuckets-1)
}

// Add counts d.
func (s *Sketch) Add(d time.Duration) {
	b := bucketOf(d)
	if s.counts[b] < math.MaxUint32 {
		s.counts[b]++
	}
	s.n++
	s.sum += d
}

// Count is how many durations were added; Sum their total.
func (s *Sketch) Count() uint64      { return s.n }
func (s *Sketch) Sum() time.Duration { return s.sum }

// Quantile returns the q-quantile (0 < q <= 1), 0 when empty: the middle
// of its bucket, in the bucket's own relative error.
func (s *Sketch) Quantile(q float64) time.Duration {
	var total uint64
	for _, c := range s.counts {
		total += uint64(c)
	}
	if total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(total)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range s.counts {
		seen += uint64(c)
		if seen >= rank {
			if i == 0 {
				return sketchMin
			}
			upper := float64(sketchMin) * math.Pow(sketchGamma, float64(i))
			return time.Duration(upper * 2 / (1 + sketchGamma))
		}
	}
	return 0
}
