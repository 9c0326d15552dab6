package arrowexec

import (
	"math"
	"reflect"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// TestStateCodec round-trips the kinds of values operators keep (through
// a checkpoint's Arrow encoding), keeping nil apart from empty, and
// rejects what is not state.
func TestStateCodec(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	type inner struct {
		v  decimal128.Num
		ok bool
	}
	type state struct {
		a      int64
		u      uint32
		f      float64
		s      string
		nilS   []int64
		empty  []int64
		nested [][]inner
		ring   *overRing[string]
		arr    [2]int8

		//lint:ignore U1000 set by no one: putBlob must round-trip a nil pointer
		none *overRing[int64]
	}
	in := state{a: math.MinInt64, u: math.MaxUint32, f: math.Inf(-1), s: "héllo", empty: []int64{},
		nested: [][]inner{nil, {{v: decimal128.New(-3, 7), ok: true}}},
		ring:   &overRing[string]{size: 2, flat: []overRingEnt[string]{{"x", true}, {"", false}}, n: 2},
		arr:    [2]int8{-1, 1}}
	nan := math.NaN()
	w := &StateWriter{}
	if err := putBlob(mem, w, "s", &in, &nan); err != nil {
		t.Fatal(err)
	}
	r, err := RoundTrip(mem, w)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	var out state
	var nan2 float64
	if err := loadBlob(r, "s", &out, &nan2); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) || !math.IsNaN(nan2) {
		t.Fatalf("got %+v, want %+v", out, in)
	}
	if out.nilS != nil || out.empty == nil {
		t.Fatal("nil and empty slices not kept apart")
	}
	if err := loadBlob(r, "s", &out); err == nil {
		t.Fatal("decoding fewer values than were encoded did not fail")
	}
	for _, bad := range []any{&map[int]int{}, &struct{ f func() }{}, &struct{ i any }{}, 3} {
		if _, err := encodeState(nil, bad); err == nil {
			t.Errorf("encoding %T did not fail", bad)
		}
	}
}

type fuzzInner struct {
	V  decimal128.Num
	Ok bool
}

// fuzzState has the kinds of values operators keep.
type fuzzState struct {
	A      int64
	U      uint32
	F      float64
	S      string
	Nested [][]fuzzInner
	Ring   *overRing[string]
	Arr    [2]int8
}

// FuzzStateCodec decodes arbitrary bytes as operator state: a state that
// is not what was written is an error, never a panic or a huge
// allocation; what decodes encodes back to the same bytes.
func FuzzStateCodec(f *testing.F) {
	in := fuzzState{A: -5, U: 7, F: 1.5, S: "héllo", Ring: &overRing[string]{size: 1, flat: []overRingEnt[string]{{"x", true}}, n: 1}}
	in.Nested = [][]fuzzInner{nil, {{V: decimal128.New(-3, 7), Ok: true}}}
	seed, err := encodeState(nil, &in)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		var out fuzzState
		if err := decodeState(data, &out); err != nil {
			return
		}
		again, err := encodeState(nil, &out)
		if err != nil {
			t.Fatal(err)
		}
		var back fuzzState
		if err := decodeState(again, &back); err != nil || !reflect.DeepEqual(out, back) && !math.IsNaN(out.F) {
			t.Fatalf("re-encoded state decodes to %+v (%v), want %+v", back, err, out)
		}
	})
}
