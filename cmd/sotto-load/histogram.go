package main

import (
	"fmt"
	"math/bits"
	"sync/atomic"
	"time"
)

// histogram records durations into fixed log-linear buckets (1 us
// resolution below 128 us, then 64 buckets per power of two: at most
// 1.6% relative error) with atomic counters, so that recording costs no
// allocation and no lock.
type histogram struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	sum    atomic.Uint64 // microseconds
	max    atomic.Uint64 // microseconds
}

const (
	histLinear  = 128 // 1 us buckets below this
	histSub     = 64  // buckets per power of two above it
	histBuckets = histLinear + 40*histSub
)

func histIndex(us uint64) int {
	if us < histLinear {
		return int(us)
	}
	shift := bits.Len64(us) - 7 // us>>shift is in [64, 128)
	i := histLinear + (shift-1)*histSub + int(us>>shift) - histSub
	return min(i, histBuckets-1)
}

// histUpper is the largest value (us) that lands in bucket i.
func histUpper(i int) uint64 {
	if i < histLinear {
		return uint64(i)
	}
	shift := (i-histLinear)/histSub + 1
	m := uint64((i-histLinear)%histSub + histSub)
	return (m+1)<<shift - 1
}

func (h *histogram) record(d time.Duration) {
	us := uint64(max(d, 0) / time.Microsecond)
	h.counts[histIndex(us)].Add(1)
	h.n.Add(1)
	h.sum.Add(us)
	for {
		m := h.max.Load()
		if us <= m || h.max.CompareAndSwap(m, us) {
			break
		}
	}
}

// quantile returns the upper edge of the bucket holding the q-quantile
// (0 < q <= 1), capped at the maximum seen.
func (h *histogram) quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n) + 0.999999)
	rank = max(1, min(rank, n))
	var c uint64
	for i := range h.counts {
		c += h.counts[i].Load()
		if c >= rank {
			return time.Duration(min(histUpper(i), h.max.Load())) * time.Microsecond
		}
	}
	return time.Duration(h.max.Load()) * time.Microsecond
}

func (h *histogram) String() string {
	n := h.n.Load()
	if n == 0 {
		return "(no samples)"
	}
	r := func(d time.Duration) time.Duration {
		if d > 10*time.Millisecond {
			return d.Round(100 * time.Microsecond)
		}
		return d
	}
	return fmt.Sprintf("p50 %v  p95 %v  p99 %v  p99.9 %v  max %v  mean %v  (n=%d)",
		r(h.quantile(.50)), r(h.quantile(.95)), r(h.quantile(.99)), r(h.quantile(.999)),
		r(time.Duration(h.max.Load())*time.Microsecond), r(time.Duration(h.sum.Load()/n)*time.Microsecond), n)
}
