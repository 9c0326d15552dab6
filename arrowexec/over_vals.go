package arrowexec

import (
	"fmt"
	"math/big"
	"math/bits"
	"strings"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/kernels"
)

// This file holds the typed value plumbing of the window-function
// evaluators (over_eval.go): reading an Arrow column into a Go slice once
// per batch, building result columns from Go slices, per-partition rings
// of recent values and 128-bit sums. Evaluators are generic over overVal,
// so their row loops index plain slices: no per-row interface calls.

// overVal is the Go type a window-function value is held in: INT and DATE
// as int32; BIGINT, TIMESTAMP and INTERVAL as int64; DOUBLE; DECIMAL as
// its unscaled 128-bit value; BOOLEAN; VARCHAR.
type overVal interface {
	int32 | int64 | float64 | decimal128.Num | bool | string
}

// overRead returns the values of a as a []T (null slots unspecified).
// Fixed-width columns are aliased (valid until a is released); BOOLEAN
// and VARCHAR are copied into *scratch (strings are cloned, so they may be
// kept after a is released).
func overRead[T overVal](a arrow.Array, scratch *[]T) []T {
	var out any
	switch s := any(scratch).(type) {
	case *[]int32:
		out = kernels.Values[int32](a)
	case *[]int64:
		out = kernels.Values[int64](a)
	case *[]float64:
		out = kernels.Values[float64](a)
	case *[]decimal128.Num:
		out = kernels.Values[decimal128.Num](a)
	case *[]bool:
		b := a.(*array.Boolean)
		v := overResize(*s, a.Len())
		for i := range v {
			v[i] = b.Value(i)
		}
		*s = v
		out = v
	case *[]string:
		b := a.(*array.String)
		v := overResize(*s, a.Len())
		for i := range v {
			if b.IsValid(i) {
				v[i] = strings.Clone(b.Value(i))
			} else {
				v[i] = ""
			}
		}
		*s = v
		out = v
	}
	return out.([]T)
}

// overResize returns s resized to n (contents unspecified).
func overResize[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n, n+n/4)
	}
	return s[:n]
}

// overValid returns a's validity as one bool per row, or nil when a has no
// NULLs; the slice is *scratch, reused.
func overValid(a arrow.Array, scratch *[]bool) []bool {
	if a.NullN() == 0 {
		return nil
	}
	v := overResize(*scratch, a.Len())
	bm, off := a.NullBitmapBytes(), a.Data().Offset()
	for i := range v {
		v[i] = bitutil.BitIsSet(bm, off+i)
	}
	*scratch = v
	return v
}

// overBuild returns a new array of type dt (owned by the caller) holding
// vals, NULL where valid is false (valid nil: no NULLs).
func overBuild[T overVal](alloc memory.Allocator, dt arrow.DataType, vals []T, valid []bool) arrow.Array {
	n := len(vals)
	switch v := any(vals).(type) {
	case []int32:
		return overFixed(alloc, dt, v, valid)
	case []int64:
		return overFixed(alloc, dt, v, valid)
	case []float64:
		return overFixed(alloc, dt, v, valid)
	case []decimal128.Num:
		return overFixed(alloc, dt, v, valid)
	case []bool:
		buf := memory.NewResizableBuffer(alloc)
		buf.Resize(int(bitutil.BytesForBits(int64(n))))
		b := buf.Bytes()
		clear(b)
		for i, x := range v {
			if x {
				bitutil.SetBit(b, i)
			}
		}
		return overMakeArray(alloc, dt, n, valid, buf)
	case []string:
		sb := array.NewStringBuilder(alloc)
		defer sb.Release()
		total := 0
		for _, s := range v {
			total += len(s)
		}
		sb.Reserve(n)
		sb.ReserveData(total)
		for i, s := range v {
			if valid != nil && !valid[i] {
				sb.AppendNull()
			} else {
				sb.Append(s)
			}
		}
		return sb.NewArray()
	}
	panic(fmt.Sprintf("overBuild: %T", vals))
}

// overFixed builds a fixed-width array of type dt from vals.
func overFixed[T kernels.Fixed](alloc memory.Allocator, dt arrow.DataType, vals []T, valid []bool) arrow.Array {
	var z T
	buf := memory.NewResizableBuffer(alloc)
	buf.Resize(len(vals) * int(unsafe.Sizeof(z)))
	if len(vals) > 0 {
		copy(unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(buf.Bytes()))), len(vals)), vals)
	}
	return overMakeArray(alloc, dt, len(vals), valid, buf)
}

// overMakeArray wraps a data buffer (taking over its reference) with the
// validity of valid.
func overMakeArray(alloc memory.Allocator, dt arrow.DataType, n int, valid []bool, data *memory.Buffer) arrow.Array {
	var vb *memory.Buffer
	nulls := 0
	for _, ok := range valid {
		if !ok {
			nulls++
		}
	}
	if nulls > 0 {
		vb = memory.NewResizableBuffer(alloc)
		vb.Resize(int(bitutil.BytesForBits(int64(n))))
		b := vb.Bytes()
		clear(b)
		for i, ok := range valid {
			if ok {
				bitutil.SetBit(b, i)
			}
		}
	}
	d := array.NewData(dt, n, []*memory.Buffer{vb, data}, nil, nulls, 0)
	out := array.MakeFromData(d)
	d.Release()
	data.Release()
	if vb != nil {
		vb.Release()
	}
	return out
}

// goTypeOf names the overVal a SQL type is held in ("" if none).
func goTypeOf(dt arrow.DataType) string {
	switch dt.ID() {
	case arrow.INT32, arrow.DATE32:
		return "int32"
	case arrow.INT64, arrow.TIMESTAMP, arrow.DURATION:
		return "int64"
	case arrow.FLOAT64:
		return "float64"
	case arrow.DECIMAL128:
		return "decimal"
	case arrow.BOOL:
		return "bool"
	case arrow.STRING:
		return "string"
	}
	return ""
}

// ring keeps, per partition, the values of its last size rows: the value
// of partition position c lives in slot c % size. Small rings (size <=
// flatRing) live in one flat slice, size slots per partition, so a row
// touches one cache line; larger ones are allocated per partition as its
// rows arrive, so a partition with few rows holds few.
type overRing[T overVal] struct {
	size int64
	flat []overRingEnt[T]   // size <= flatRing: partition p's slots at p*size
	lazy [][]overRingEnt[T] // larger rings
	n    int64              // slots allocated, for accounting
}

const flatRing = 8

type overRingEnt[T overVal] struct {
	v  T
	ok bool
}

func (r *overRing[T]) grow(parts int) {
	if r.size <= flatRing {
		if want := int64(parts) * r.size; int64(len(r.flat)) < want {
			r.flat = overGrow(r.flat, int(want))
			r.n = int64(len(r.flat))
		}
		return
	}
	for len(r.lazy) < parts {
		r.lazy = append(r.lazy, nil)
	}
}

// put stores the value of position c of partition p (positions arrive in
// order 0, 1, 2, ...) and returns the value it displaces, that of
// position c-size, with had false when c < size.
func (r *overRing[T]) put(p uint32, c int64, v T, ok bool) (old T, oldOK, had bool) {
	slot := int64(uint64(c) % uint64(r.size))
	if r.flat != nil {
		e := &r.flat[int64(p)*r.size+slot]
		old, oldOK = e.v, e.ok
		e.v, e.ok = v, ok
		return old, oldOK, c >= r.size
	}
	es := r.lazy[p]
	if slot == int64(len(es)) {
		r.lazy[p] = append(es, overRingEnt[T]{v, ok})
		r.n++
		return old, false, false
	}
	e := &es[slot]
	old, oldOK = e.v, e.ok
	e.v, e.ok = v, ok
	return old, oldOK, true
}

// get returns the value of position c of partition p, which must be one
// of its last size positions.
func (r *overRing[T]) get(p uint32, c int64) (T, bool) {
	slot := int64(uint64(c) % uint64(r.size))
	var e overRingEnt[T]
	if r.flat != nil {
		e = r.flat[int64(p)*r.size+slot]
	} else {
		e = r.lazy[p][slot]
	}
	return e.v, e.ok
}

// overWarm is how many rows the evaluators warm at a time.
const overWarm = 256

// warm loads the slots rows (partitions pids, positions pos) will put
// into, in a loop without dependencies between iterations, so that the
// cache misses of a large ring overlap instead of stalling the
// evaluator's loop one at a time (as agg's groupMap.warm). The result
// only keeps the loads from being optimised away.
func (r *overRing[T]) warm(pids []uint32, pos []int64) int64 {
	if r.flat == nil {
		return 0
	}
	var x int64
	size := uint64(r.size)
	for k, p := range pids {
		if r.flat[int64(p)*r.size+int64(uint64(pos[k])%size)].ok {
			x++
		}
	}
	return x
}

// overWarmState loads per-partition state s[p] for the partitions pids (see
// ring.warm).
func overWarmState[T int64 | wide | float64](s []T, pids []uint32) int64 {
	var x int64
	for _, p := range pids {
		switch v := any(&s[p]).(type) {
		case *int64:
			x += *v
		case *wide:
			x += int64(v.lo)
		case *float64:
			x += int64(*v)
		}
	}
	return x
}

func (r *overRing[T]) bytes() int64 {
	var z overRingEnt[T]
	per := int64(unsafe.Sizeof(z))
	if _, isStr := any(z.v).(string); isStr {
		per += 16 // string bytes are not counted exactly; a rough average
	}
	return r.n*per + int64(len(r.lazy))*24
}

// wide is a two's complement 128-bit integer: exact sums of BIGINT and
// DECIMAL values.
type wide struct {
	lo uint64
	hi int64
}

func wideOf(v int64) wide { return wide{lo: uint64(v), hi: v >> 63} }

func wideOfNum(v decimal128.Num) wide { return wide{lo: v.LowBits(), hi: v.HighBits()} }

// add returns x+y and whether the sum left the 128-bit range.
func (x wide) add(y wide) (wide, bool) {
	lo, c := bits.Add64(x.lo, y.lo, 0)
	hi := x.hi + y.hi + int64(c)
	return wide{lo, hi}, (hi^x.hi)&(hi^y.hi) < 0
}

// sub returns x-y and whether the difference left the 128-bit range.
func (x wide) sub(y wide) (wide, bool) {
	lo, b := bits.Sub64(x.lo, y.lo, 0)
	hi := x.hi - y.hi - int64(b)
	return wide{lo, hi}, (x.hi^y.hi)&(hi^x.hi) < 0
}

func (x wide) num() decimal128.Num { return decimal128.New(x.hi, x.lo) }

// int64 returns x as an int64 and whether it fits.
func (x wide) int64() (int64, bool) { return int64(x.lo), x.hi == int64(x.lo)>>63 }

// float64 returns x/c rounded once.
func (x wide) div(c int64) float64 {
	if v, ok := x.int64(); ok && v < 1<<53 && v > -(1<<53) {
		return float64(v) / float64(c)
	}
	f, _ := new(big.Rat).SetFrac(x.num().BigInt(), big.NewInt(c)).Float64()
	return f
}
