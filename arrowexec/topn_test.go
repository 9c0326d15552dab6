package arrowexec

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/arrowexec/expr"
	"github.com/ferrisstreams/ferris/kernels"
)

// topnCase is one PARTITION BY / ORDER BY / N combination the property
// test runs.
type topnCase struct {
	name  string
	parts []int // overInSchema columns
	order []OverOrder
	n     int64
}

func topnCases() []topnCase {
	ord := func(c int, desc, nullsFirst bool) OverOrder {
		return OverOrder{Expr: overCol(c), Desc: desc, NullsFirst: nullsFirst}
	}
	return []topnCase{
		{name: "k/v-desc/3", parts: []int{oK}, order: []OverOrder{ord(oV, true, true)}, n: 3},
		{name: "k/v-asc/1", parts: []int{oK}, order: []OverOrder{ord(oV, false, false)}, n: 1},
		{name: "k,s/x-asc-nullsfirst/2", parts: []int{oK, oS}, order: []OverOrder{ord(oX, false, true)}, n: 2},
		{name: "none/s-desc,d/4", order: []OverOrder{ord(oS, true, true), ord(oD, false, false)}, n: 4},
		{name: "s/d-desc-nullslast,v/5", parts: []int{oS}, order: []OverOrder{ord(oD, true, false), ord(oV, false, false)}, n: 5},
	}
}

func topnConfig(c topnCase) TopNConfig {
	cfg := TopNConfig{Query: "q", OrderBy: c.order, N: c.n}
	for _, p := range c.parts {
		cfg.PartitionBy = append(cfg.PartitionBy, overCol(p))
	}
	fields := slices.Clone(overInSchema.Fields()[:oWM])
	fields = append(fields, arrow.Field{Name: "rn", Type: arrow.PrimitiveTypes.Int64})
	cfg.Schema = arrow.NewSchema(fields, nil)
	return cfg
}

// topnRef is the row-at-a-time reference: per partition its rows (ids),
// best first, a later row entering only when strictly better.
type topnRef struct {
	c    topnCase
	rows []overRow
	top  map[string][]int // partition key → row indexes
}

func (r *topnRef) partKey(row overRow) string {
	var sb strings.Builder
	for _, p := range r.c.parts {
		sb.WriteString(topnRefVal(row, p) + "|")
	}
	return sb.String()
}

func topnRefVal(row overRow, c int) string {
	p := func(v *int64) string {
		if v == nil {
			return "NULL"
		}
		return fmt.Sprint(*v)
	}
	switch c {
	case oK:
		return p(row.k)
	case oS:
		if row.s == nil {
			return "NULL"
		}
		return fmt.Sprintf("%q", *row.s)
	}
	panic(c)
}

// cmpRows compares rows a and b in ORDER BY order.
func (r *topnRef) cmpRows(a, b overRow) int {
	for _, ob := range r.c.order {
		col, _ := expr.ColumnIndex(ob.Expr)
		var na, nb bool
		var c int
		switch col {
		case oV, oD:
			x, y := a.v, b.v
			if col == oD {
				x, y = a.d, b.d
			}
			na, nb = x == nil, y == nil
			if !na && !nb {
				c = cmp.Compare(*x, *y)
			}
		case oX:
			na, nb = a.x == nil, b.x == nil
			if !na && !nb {
				c = kernels.CompareFloat(*a.x, *b.x)
			}
		case oS:
			na, nb = a.s == nil, b.s == nil
			if !na && !nb {
				c = strings.Compare(*a.s, *b.s)
			}
		default:
			panic(col)
		}
		switch {
		case na && nb:
			c = 0
		case na || nb:
			c = 1 // a NULL sorts as larger than every value
			if nb {
				c = -1
			}
			if ob.NullsFirst {
				c = -c
			}
		case ob.Desc:
			c = -c
		}
		if c != 0 {
			return c
		}
	}
	return 0
}

func (r *topnRef) add(i int) {
	row := r.rows[i]
	k := r.partKey(row)
	list := r.top[k]
	j := len(list)
	for j > 0 && r.cmpRows(row, r.rows[list[j-1]]) < 0 {
		j--
	}
	list = slices.Insert(list, j, i)
	if int64(len(list)) > r.c.n {
		list = list[:r.c.n]
	}
	r.top[k] = list
}

// state renders the top N as (partition|rank) → row id.
func (r *topnRef) state() map[string]int64 {
	out := map[string]int64{}
	for k, list := range r.top {
		for rank, i := range list {
			out[fmt.Sprintf("%s%d", k, rank+1)] = r.rows[i].id
		}
	}
	return out
}

// TestTopN checks TopNOp against the reference over random rows (few
// partitions, many ties, NULLs in every key) at batch sizes 1, 3 and
// default: after every input batch, the upserts emitted for it, applied
// to a map keyed (partition, rank), must give the reference's top N of
// every partition, and must touch exactly the ranks whose row changed;
// each emitted row must be the input row it names, every column intact;
// the output watermark is the input's.
func TestTopN(t *testing.T) {
	seeds, n := uint64(4), 300
	if testing.Short() {
		seeds, n = 2, 150
	}
	for _, c := range topnCases() {
		t.Run(c.name, func(t *testing.T) {
			for seed := uint64(1); seed <= seeds; seed++ {
				r := rand.New(rand.NewPCG(seed, 11))
				rows := genOverRows(r, n+r.IntN(n), 6)
				for i := range rows {
					rows[i].wm = int64(i) // strictly increasing per batch
				}
				for _, size := range []int{1, 3, 1024} {
					checkTopN(t, c, rows, size)
				}
			}
		})
	}
}

func checkTopN(t *testing.T, c topnCase, rows []overRow, size int) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	input := materialize(t, &overSource{alloc: mem, rows: rows, size: func() int { return size }})
	defer releaseReplay(input)
	// the input rows, rendered, by id
	rendered := map[int64]string{}
	for _, m := range input {
		b := m.Batch
		for i := 0; i < int(b.NumRows()); i++ {
			rendered[b.Column(oID).(interface{ Value(int) int64 }).Value(i)] = topnRender(b, i, oWM)
		}
	}
	op, err := NewTopN(mem, &replaySource{schema: overInSchema, msgs: input}, topnConfig(c))
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	if err := op.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	out := materialize(t, op)
	defer releaseReplay(out)
	ref := &topnRef{c: c, rows: rows, top: map[string][]int{}}
	got := map[string]int64{}
	next := 0 // rows fed to the reference
	prev := ref.state()
	for k, m := range out {
		if m.Watermark != FinalWatermark && (k >= len(input) || m.Watermark != input[k].Watermark) {
			t.Fatalf("size %d: output message %d has watermark %d, input %d", size, k, m.Watermark, input[min(k, len(input)-1)].Watermark)
		}
		for next < len(rows) && rows[next].wm <= m.Watermark {
			ref.add(next)
			next++
		}
		changed := map[string]bool{}
		if b := m.Batch; b != nil {
			for i := 0; i < int(b.NumRows()); i++ {
				var key strings.Builder
				for _, p := range c.parts {
					key.WriteString(renderTopNPart(b.Column(p), i) + "|")
				}
				rn := b.Column(oWM).(interface{ Value(int) int64 }).Value(i)
				id := b.Column(oID).(interface{ Value(int) int64 }).Value(i)
				kk := fmt.Sprintf("%s%d", key.String(), rn)
				if changed[kk] {
					t.Fatalf("size %d: %s emitted twice for one batch", size, kk)
				}
				changed[kk] = true
				got[kk] = id
				if s := topnRender(b, i, oWM); s != rendered[id] {
					t.Fatalf("size %d: emitted row %s, input row %s", size, s, rendered[id])
				}
			}
		}
		want := ref.state()
		if !maps.Equal(got, want) {
			t.Fatalf("size %d: after message %d (wm %d):\n got %v\nwant %v", size, k, m.Watermark, got, want)
		}
		for kk, id := range want {
			if changed[kk] != (prev[kk] != id || !containsKey(prev, kk)) {
				t.Fatalf("size %d: message %d: rank %s emitted=%v, but changed from %d to %d", size, k, kk, changed[kk], prev[kk], id)
			}
		}
		prev = want
	}
	if next != len(rows) {
		t.Fatalf("size %d: output watermarks cover %d of %d rows", size, next, len(rows))
	}
}

func containsKey(m map[string]int64, k string) bool {
	_, ok := m[k]
	return ok
}

func renderTopNPart(a arrow.Array, i int) string {
	if a.IsNull(i) {
		return "NULL"
	}
	return renderCell(a, i)
}

// topnRender renders the first n columns of row i of b.
func topnRender(b arrow.RecordBatch, i, n int) string {
	var sb strings.Builder
	for c := 0; c < n; c++ {
		sb.WriteString(renderStateMsgCell(b.Column(c), i) + " ")
	}
	return sb.String()
}

func renderStateMsgCell(a arrow.Array, i int) string {
	if a.IsNull(i) {
		return "NULL"
	}
	return a.ValueStr(i)
}

// TestTopNCheckpoint checks SaveState/LoadState with checkStatefulBarrier
// at several barrier positions and batch sizes.
func TestTopNCheckpoint(t *testing.T) {
	mattered := 0
	for _, c := range topnCases() {
		for seed := uint64(1); seed <= 2; seed++ {
			r := rand.New(rand.NewPCG(seed, 13))
			rows := genOverRows(r, 60+r.IntN(60), 6)
			for _, size := range []int{1, 3, 1 + r.IntN(30)} {
				mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
				msgs := materialize(t, &overSource{alloc: mem, rows: rows, size: func() int { return size }})
				mattered += checkBarriers(t, mem, overInSchema, msgs, r, func(in Operator) (Stateful, error) {
					return NewTopN(mem, in, topnConfig(c))
				})
				releaseReplay(msgs)
				mem.AssertSize(t, 0)
			}
		}
	}
	if mattered == 0 {
		t.Fatal("no barrier position where the saved state changes the output: the test checks nothing")
	}
}

// TestTopNReserves checks that the state is reserved through Reserver and
// returned at Close.
func TestTopNReserves(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	r := rand.New(rand.NewPCG(1, 1))
	rows := genOverRows(r, 200, 6)
	input := materialize(t, &overSource{alloc: mem, rows: rows, size: func() int { return 16 }})
	defer releaseReplay(input)
	res := &countingReserver{Allocator: mem}
	op, err := NewTopN(res, &replaySource{schema: overInSchema, msgs: input}, topnConfig(topnCases()[0]))
	if err != nil {
		t.Fatal(err)
	}
	if err := op.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	out := materialize(t, op)
	releaseReplay(out)
	if res.held <= 0 {
		t.Fatalf("top-N reserved %d bytes", res.held)
	}
	op.Close()
	if res.held != 0 {
		t.Fatalf("after Close %d bytes stay reserved", res.held)
	}
}

type countingReserver struct {
	memory.Allocator
	held int64
}

func (c *countingReserver) Reserve(n int64) error { c.held += n; return nil }
func (c *countingReserver) Unreserve(n int64)     { c.held -= n }
