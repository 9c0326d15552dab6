package agg

import (
	"fmt"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/kernels"
)

// This file saves a Table's complete state as one Arrow record batch (for
// checkpoints) and loads it back.
//
// The batch has one row per group id (combined-away groups included), in
// id order: the key columns ("key0", ...), "first" (sequence number of the
// group's first row), "touched", then, when the table has combined groups,
// "dead" and "fwd", then per aggregate j its state columns named "a<j>.*"
// with the raw accumulators (counts, 64-bit and 128-bit sums as
// DECIMAL(38,s), MIN/MAX values, FIRST/LAST values and sequence numbers,
// Welford's n/mean/M2, HyperLogLog registers, DISTINCT value sets as
// lists). Schema metadata holds the table's next sequence number.

const (
	metaSeq      = "ferris.agg.seq"
	metaCombined = "ferris.agg.combined"
)

// SaveState returns the table's state as a record batch allocated from
// alloc and owned by the caller; a table built by NewTable with the same
// key types and specs takes it back with LoadState. It does not change
// the table. It fails after a Combine overflow (the query has failed).
func (t *Table) SaveState(alloc memory.Allocator) (arrow.RecordBatch, error) {
	if t.closed {
		return nil, fmt.Errorf("agg: SaveState on a released Table")
	}
	if t.err != nil {
		return nil, t.err
	}
	o := &stateOut{alloc: alloc, all: make([]uint32, t.n)}
	for g := range o.all {
		o.all[g] = uint32(g)
	}
	if t.groups != nil {
		for i, c := range t.groups.cols {
			o.add("key"+strconv.Itoa(i), c.emit(alloc, o.all))
		}
	}
	putFixed(o, "first", arrow.PrimitiveTypes.Uint64, t.first, nil)
	o.bits("touched", t.touched)
	meta := map[string]string{metaSeq: strconv.FormatUint(t.seq, 10)}
	if t.dead != nil {
		meta[metaCombined] = "true"
		o.bits("dead", t.dead)
		putFixed(o, "fwd", arrow.PrimitiveTypes.Uint32, t.fwd, nil)
	}
	for j, a := range t.aggs {
		o.prefix = "a" + strconv.Itoa(j) + "."
		a.save(o)
	}
	md := arrow.MetadataFrom(meta)
	rec := array.NewRecordBatch(arrow.NewSchema(o.fields, &md), o.cols, int64(t.n))
	releaseAll(o.cols)
	return rec, nil
}

// LoadState restores a state written by SaveState into t, which must be
// empty (new or Reset) and have the key types and specs of the saved
// table. Afterwards t behaves exactly as the saved table did: same group
// ids, states, first-seen order, touched groups and sequence number. rec
// is read, not retained. A keyless table takes back as many groups as it
// had (one, or those UpdateIDs numbered).
func (t *Table) LoadState(rec arrow.RecordBatch) error {
	if t.closed {
		return fmt.Errorf("agg: LoadState on a released Table")
	}
	if t.n != 0 {
		return fmt.Errorf("agg: LoadState into a table with %d groups", t.n)
	}
	if err := t.loadState(rec); err != nil {
		t.Reset()
		return fmt.Errorf("agg: loading table state: %w", err)
	}
	t.account()
	return nil
}

func (t *Table) loadState(rec arrow.RecordBatch) error {
	md := rec.Schema().Metadata()
	i := md.FindKey(metaSeq)
	if i < 0 {
		return fmt.Errorf("sequence number missing")
	}
	seq, err := strconv.ParseUint(md.Values()[i], 10, 64)
	if err != nil {
		return fmt.Errorf("sequence number: %w", err)
	}
	n := int(rec.NumRows())
	in := &stateIn{rec: rec, n: n}
	if t.groups == nil {
		t.n = n // one group, or as many as UpdateIDs numbered
	} else {
		keys := make([]arrow.Array, len(t.groups.cols))
		for i := range keys {
			keys[i] = in.next("key"+strconv.Itoa(i), t.keyTypes[i])
		}
		if in.err != nil {
			return in.err
		}
		if n > 0 {
			if err := t.loadKeys(keys); err != nil {
				return err
			}
		}
	}
	t.growStates()
	t.seq = seq
	copy(t.first, getFixed[uint64](in, "first", arrow.PrimitiveTypes.Uint64, nil))
	in.bits("touched", t.touched)
	if md.FindKey(metaCombined) >= 0 {
		t.dead = make(bitset, 0).grow(n)
		in.bits("dead", t.dead)
		t.fwd = getFixed[uint32](in, "fwd", arrow.PrimitiveTypes.Uint32, nil)
		for _, f := range t.fwd {
			if int(f) >= n {
				return fmt.Errorf("group forwarded to %d of %d", f, n)
			}
		}
	}
	for j, a := range t.aggs {
		in.prefix = "a" + strconv.Itoa(j) + "."
		a.load(in)
	}
	if in.err == nil && in.i != int(rec.NumCols()) {
		in.err = fmt.Errorf("%d state columns, want %d", rec.NumCols(), in.i)
	}
	return in.err
}

// loadKeys creates the groups of the saved keys (distinct, in id order).
func (t *Table) loadKeys(keys []arrow.Array) error {
	ids := make([]uint32, keys[0].Len())
	scr := getScratch(len(t.specs))
	defer putScratch(scr)
	t.groups.s = scr
	_, err := t.groups.find(keys, nil, nil, ids)
	t.groups.s = nil
	if err != nil {
		return err
	}
	for g, id := range ids {
		if int(id) != g {
			return fmt.Errorf("saved keys of groups %d and %d are equal", id, g)
		}
	}
	t.n = t.groups.n
	return nil
}

// stateOut collects state columns, one row per group (all: 0..n-1).
type stateOut struct {
	alloc  memory.Allocator
	all    []uint32
	prefix string // of the current aggregate's column names
	fields []arrow.Field
	cols   []arrow.Array
}

func (o *stateOut) add(name string, a arrow.Array) {
	o.fields = append(o.fields, arrow.Field{Name: o.prefix + name, Type: a.DataType(), Nullable: true})
	o.cols = append(o.cols, a)
}

// putFixed adds vals as a column of type dt, NULL where valid (nil: all
// valid) is clear; the value slots of NULL rows hold vals too.
func putFixed[T kernels.Fixed](o *stateOut, name string, dt arrow.DataType, vals []T, valid bitset) {
	o.add(name, emitFixed(o.alloc, dt, o.all, vals, valid))
}

// bits adds a per-group bitset as a BOOLEAN column.
func (o *stateOut) bits(name string, b bitset) { o.add(name, emitBools(o.alloc, o.all, b, nil)) }

// stateIn reads state columns in the order stateOut wrote them. The first
// problem is kept in err; readers then return empty values.
type stateIn struct {
	rec    arrow.RecordBatch
	n      int // groups
	i      int // next column
	prefix string
	err    error
}

// next returns the next column, checking its name and type (dt nil: any).
func (in *stateIn) next(name string, dt arrow.DataType) arrow.Array {
	if in.err != nil {
		return nil
	}
	name = in.prefix + name
	if in.i >= int(in.rec.NumCols()) {
		in.err = fmt.Errorf("state column %q missing", name)
		return nil
	}
	f, c := in.rec.Schema().Field(in.i), in.rec.Column(in.i)
	in.i++
	if f.Name != name || dt != nil && !arrow.TypeEqual(c.DataType(), dt) {
		in.err = fmt.Errorf("state column %d is %s %s, want %s %v", in.i-1, f.Name, c.DataType(), name, dt)
		return nil
	}
	return c
}

// getFixed returns the next column's values in a new slice of length n,
// and its validity into valid (if non-nil, grown to n).
func getFixed[T kernels.Fixed](in *stateIn, name string, dt arrow.DataType, valid bitset) []T {
	out := make([]T, in.n)
	c := in.next(name, dt)
	if c == nil {
		return out
	}
	copy(out, kernels.Values[T](c))
	if valid != nil {
		getValid(c, valid)
	}
	return out
}

// getValid sets valid's bits from c's validity.
func getValid(c arrow.Array, valid bitset) {
	for g := 0; g < c.Len(); g++ {
		valid.put(uint32(g), c.IsValid(g))
	}
}

// bits reads a BOOLEAN column written by stateOut.bits into b (grown to n).
func (in *stateIn) bits(name string, b bitset) {
	if c := in.next(name, arrow.FixedWidthTypes.Boolean); c != nil {
		getBools(c, b, nil)
	}
}

// getBools sets vals (and valid, if non-nil) from a BOOLEAN column.
func getBools(c arrow.Array, vals, valid bitset) {
	bc := c.(*array.Boolean)
	for g := 0; g < c.Len(); g++ {
		vals.put(uint32(g), bc.Value(g))
		if valid != nil {
			valid.put(uint32(g), bc.IsValid(g))
		}
	}
}

// restoreFill sets the value of every group without a value (valid clear)
// back to the identity fill, as grow left it.
func restoreFill[T any](vals []T, valid bitset, fill T) {
	for g := range vals {
		if !valid.get(uint32(g)) {
			vals[g] = fill
		}
	}
}

// ---- per aggregate ----

func (a *countAgg) save(o *stateOut) { putFixed(o, "n", arrow.PrimitiveTypes.Int64, a.n, nil) }
func (a *countAgg) load(in *stateIn) { a.n = getFixed[int64](in, "n", arrow.PrimitiveTypes.Int64, nil) }

func (a *sumInt[T]) save(o *stateOut) { putFixed(o, "sum", arrow.PrimitiveTypes.Int64, a.sums, a.nn) }
func (a *sumInt[T]) load(in *stateIn) {
	a.sums = getFixed[int64](in, "sum", arrow.PrimitiveTypes.Int64, a.nn)
	restoreFill(a.sums, a.nn, 0)
}

func (a *sumFloat) save(o *stateOut) {
	putFixed(o, "sum", arrow.PrimitiveTypes.Float64, a.sums, nil)
	putFixed(o, "n", arrow.PrimitiveTypes.Int64, a.n, nil)
}

func (a *sumFloat) load(in *stateIn) {
	a.sums = getFixed[float64](in, "sum", arrow.PrimitiveTypes.Float64, nil)
	a.n = getFixed[int64](in, "n", arrow.PrimitiveTypes.Int64, nil)
}

// wideType is the column type of 128-bit sums: DECIMAL(38, input scale),
// holding the exact sum (which may exceed 38 digits before Emit checks).
func (a *sumWide) wideType() arrow.DataType {
	return &arrow.Decimal128Type{Precision: 38, Scale: a.scale}
}

func (a *sumWide) save(o *stateOut) {
	nums := make([]decimal128.Num, len(a.sums))
	for g, s := range a.sums {
		nums[g] = s.num()
	}
	putFixed(o, "sum", a.wideType(), nums, nil)
	putFixed(o, "n", arrow.PrimitiveTypes.Int64, a.n, nil)
}

func (a *sumWide) load(in *stateIn) {
	for g, x := range getFixed[decimal128.Num](in, "sum", a.wideType(), nil) {
		a.sums[g] = i128{lo: x.LowBits(), hi: x.HighBits()}
	}
	a.n = getFixed[int64](in, "n", arrow.PrimitiveTypes.Int64, nil)
}

func (a *mmOrd[T]) save(o *stateOut) { putFixed(o, "val", a.dt, a.vals, a.nn) }
func (a *mmOrd[T]) load(in *stateIn) {
	a.vals = getFixed[T](in, "val", a.dt, a.nn)
	restoreFill(a.vals, a.nn, a.fill)
}

func (a *mmDec) save(o *stateOut) { putFixed(o, "val", a.dt, a.vals, a.nn) }
func (a *mmDec) load(in *stateIn) {
	a.vals = getFixed[decimal128.Num](in, "val", a.dt, a.nn)
	restoreFill(a.vals, a.nn, a.fill)
}

func (a *mmBool) save(o *stateOut) { o.add("val", emitBools(o.alloc, o.all, a.vals, a.nn)) }
func (a *mmBool) load(in *stateIn) {
	if c := in.next("val", arrow.FixedWidthTypes.Boolean); c != nil {
		getBools(c, a.vals, a.nn)
		for g := 0; g < in.n; g++ {
			if !a.nn.get(uint32(g)) {
				a.vals.put(uint32(g), !a.max) // MIN starts true, MAX false
			}
		}
	}
}

func (a *mmString) save(o *stateOut) { a.vals.save(o, "val") }
func (a *mmString) load(in *stateIn) { a.vals.load(in, "val") }

func (nullAgg) save(*stateOut) {}
func (nullAgg) load(*stateIn)  {}

func (a *firstLast) save(o *stateOut) {
	a.vals.save(o, "val")
	o.bits("has", a.has)
	putFixed(o, "seq", arrow.PrimitiveTypes.Uint64, a.seq, nil)
}

func (a *firstLast) load(in *stateIn) {
	a.vals.load(in, "val")
	in.bits("has", a.has)
	a.seq = getFixed[uint64](in, "seq", arrow.PrimitiveTypes.Uint64, nil)
}

func (a *stats) save(o *stateOut) {
	n, shift, mean, m := make([]float64, len(a.w)), make([]float64, len(a.w)), make([]float64, len(a.w)), make([]float64, len(a.w))
	for g, w := range a.w {
		n[g], shift[g], mean[g], m[g] = w.n, w.shift, w.mean, w.m
	}
	putFixed(o, "n", arrow.PrimitiveTypes.Float64, n, nil)
	putFixed(o, "shift", arrow.PrimitiveTypes.Float64, shift, nil)
	putFixed(o, "mean", arrow.PrimitiveTypes.Float64, mean, nil)
	putFixed(o, "m2", arrow.PrimitiveTypes.Float64, m, nil)
}

func (a *stats) load(in *stateIn) {
	n := getFixed[float64](in, "n", arrow.PrimitiveTypes.Float64, nil)
	shift := getFixed[float64](in, "shift", arrow.PrimitiveTypes.Float64, nil)
	mean := getFixed[float64](in, "mean", arrow.PrimitiveTypes.Float64, nil)
	m := getFixed[float64](in, "m2", arrow.PrimitiveTypes.Float64, nil)
	for g := range a.w {
		a.w[g] = welford{n: n[g], shift: shift[g], mean: mean[g], m: m[g]}
	}
}

// hllType is the column type of a group's HyperLogLog registers.
var hllType = &arrow.FixedSizeBinaryType{ByteWidth: hllM}

func (a *hll) save(o *stateOut) {
	buf, b := newFixed[uint8](o.alloc, len(a.regs))
	copy(b, a.regs)
	o.add("regs", makeArray(hllType, len(o.all), 0, nil, buf))
}

func (a *hll) load(in *stateIn) {
	if c := in.next("regs", hllType); c != nil && in.n > 0 {
		d := c.Data()
		copy(a.regs, d.Buffers()[1].Bytes()[d.Offset()*hllM:])
	}
}

// save writes the distinct (group, value) pairs as, per group, the list
// of its values and the list of their pair numbers (the order the set
// saw them in, which Merge and Combine replay), then the inner state. A
// member of a shared set writes the pairs it saw, with their numbers in
// the shared set.
func (a *distinct) save(o *stateOut) {
	n := len(o.all)
	set := a.s.set
	offs := make([]int32, n+1)
	m := 0
	for p, g := range set.prefix {
		if a.has(uint32(p)) {
			offs[g+1]++
			m++
		}
	}
	for g := 0; g < n; g++ {
		offs[g+1] += offs[g]
	}
	order := make([]uint32, m) // pairs by group, in pair order within a group
	pos := append([]int32(nil), offs[:n]...)
	for p, g := range set.prefix {
		if a.has(uint32(p)) {
			order[pos[g]] = uint32(p)
			pos[g]++
		}
	}
	vals := set.cols[0].emit(o.alloc, order)
	pairs := emitFixed(o.alloc, arrow.PrimitiveTypes.Uint32, identity(len(order)), order, nil)
	o.add("values", listOf(o.alloc, offs, vals))
	o.add("pairs", listOf(o.alloc, offs, pairs))
	prefix := o.prefix
	o.prefix += "inner."
	a.inner.save(o)
	o.prefix = prefix
}

func (a *distinct) load(in *stateIn) {
	vl, _ := in.next("values", nil).(*array.List)
	pl, _ := in.next("pairs", nil).(*array.List)
	if in.err != nil {
		return
	}
	if vl == nil || pl == nil || !arrow.TypeEqual(vl.DataType(), arrow.ListOf(a.dt)) ||
		!arrow.TypeEqual(pl.DataType(), arrow.ListOf(arrow.PrimitiveTypes.Uint32)) {
		in.err = fmt.Errorf("%sDISTINCT set columns have the wrong types", in.prefix)
		return
	}
	vals, pids := vl.ListValues(), kernels.Values[uint32](pl.ListValues())
	offs := pl.Offsets()
	if len(offs) < in.n+1 || int(offs[in.n]) > len(pids) || int(offs[in.n]) > vals.Len() {
		in.err = fmt.Errorf("%sDISTINCT set columns are too short", in.prefix)
		return
	}
	if a.bit != 0 {
		s := a.s
		s.loads = append(s.loads, distinctLoad{bit: a.bit, vals: vals, pids: pids, offs: offs[:in.n+1]})
		if a.bit == 1<<(s.members-1) {
			in.err = a.loadShared()
			if in.err != nil {
				in.err = fmt.Errorf("%s%w", in.prefix, in.err)
				return
			}
		}
	} else if in.err = a.loadOne(vals, pids, offs[:in.n+1]); in.err != nil {
		in.err = fmt.Errorf("%s%w", in.prefix, in.err)
		return
	}
	prefixName := in.prefix
	in.prefix += "inner."
	a.inner.load(in)
	in.prefix = prefixName
}

// loadOne rebuilds a set of one aggregate: pids (listed per group by offs)
// must number the pairs 0..m-1.
func (a *distinct) loadOne(vals arrow.Array, pids []uint32, offs []int32) error {
	m := int(offs[len(offs)-1] - offs[0])
	rows, prefix := make([]int32, m), make([]uint32, m)
	seen := make([]bool, m)
	for g := 0; g+1 < len(offs); g++ {
		for i := offs[g]; i < offs[g+1]; i++ {
			p := pids[i]
			if int(p) >= m || seen[p] {
				return fmt.Errorf("DISTINCT set: bad pair number %d", p)
			}
			seen[p], rows[p], prefix[p] = true, i, uint32(g)
		}
	}
	if m == 0 {
		return nil
	}
	ids, err := a.s.insert(vals, rows, prefix)
	if err != nil {
		return err
	}
	for p := range ids {
		if ids[p] != uint32(p) {
			return fmt.Errorf("DISTINCT set: pair %d saved twice", p)
		}
	}
	return nil
}

// distinctLoad is what one member of a shared set read of its state.
// The arrays belong to the record being loaded, alive during LoadState.
type distinctLoad struct {
	bit  uint8
	vals arrow.Array
	pids []uint32
	offs []int32
}

// loadShared rebuilds a shared set from the pairs its members saved
// (s.loads, read by the member with the last bit): they are inserted in
// the order of their pair numbers, so the set is the saved one, pair for
// pair. (A state saved before sets were shared numbers each member's
// pairs on its own; the set then gets another order, which COUNT does
// not see.)
func (a *distinct) loadShared() error {
	s := a.s
	loads := s.loads
	s.loads = nil
	total := 0
	arrs := make([]arrow.Array, len(loads))
	for l, d := range loads {
		total += int(d.offs[len(d.offs)-1] - d.offs[0])
		arrs[l] = d.vals
	}
	if total == 0 {
		return nil
	}
	// counting sort of the entries by pair number, stable (member order)
	cnt := make([]int32, total+1)
	for _, d := range loads {
		for _, p := range d.pids[d.offs[0]:d.offs[len(d.offs)-1]] {
			if int(p) >= total {
				return fmt.Errorf("DISTINCT set: bad pair number %d", p)
			}
			cnt[p+1]++
		}
	}
	for p := 0; p < total; p++ {
		cnt[p+1] += cnt[p]
	}
	rows, prefix, bits := make([]int32, total), make([]uint32, total), make([]uint8, total)
	base := int32(0)
	for _, d := range loads {
		for g := 0; g+1 < len(d.offs); g++ {
			for i := d.offs[g]; i < d.offs[g+1]; i++ {
				j := cnt[d.pids[i]]
				cnt[d.pids[i]]++
				rows[j], prefix[j], bits[j] = base+i, uint32(g), d.bit
			}
		}
		base += int32(d.vals.Len())
	}
	vals, err := array.Concatenate(arrs, a.alloc)
	if err != nil {
		return err
	}
	defer vals.Release()
	ids, err := s.insert(vals, rows, prefix)
	if err != nil {
		return err
	}
	for j, id := range ids {
		if s.mask[id]&bits[j] != 0 {
			return fmt.Errorf("DISTINCT set: pair %d saved twice", id)
		}
		s.mask[id] |= bits[j]
	}
	return nil
}

// insert adds the pairs (group prefix[k], value rows[k] of vals) to the
// set, returning their pair numbers.
func (s *distinctSet) insert(vals arrow.Array, rows []int32, prefix []uint32) ([]uint32, error) {
	ids := make([]uint32, len(prefix))
	scr := getScratch(1)
	s.set.s = scr
	keys := [1]arrow.Array{vals}
	_, err := s.set.find(keys[:], rows, prefix, ids)
	s.set.s = nil
	putScratch(scr)
	if err != nil {
		return nil, err
	}
	if s.members > 1 {
		s.mask = growTo(s.mask, s.set.n, 0)
	}
	return ids, nil
}

// identity returns 0..n-1.
func identity(n int) []uint32 {
	ids := make([]uint32, n)
	for i := range ids {
		ids[i] = uint32(i)
	}
	return ids
}

// listOf wraps child (taking over the caller's reference) into a LIST
// array with offsets offs.
func listOf(alloc memory.Allocator, offs []int32, child arrow.Array) arrow.Array {
	defer child.Release()
	buf, o := newFixed[int32](alloc, len(offs))
	copy(o, offs)
	d := array.NewData(arrow.ListOf(child.DataType()), len(offs)-1, []*memory.Buffer{nil, buf}, []arrow.ArrayData{child.Data()}, 0, 0)
	buf.Release()
	defer d.Release()
	return array.MakeFromData(d)
}

// ---- value stores ----

func (s *fixedStore[T]) save(o *stateOut, name string) { putFixed(o, name, s.dt, s.vals, s.valid) }
func (s *fixedStore[T]) load(in *stateIn, name string) {
	s.vals = getFixed[T](in, name, s.dt, s.valid)
}

func (s *boolStore) save(o *stateOut, name string) {
	o.add(name, emitBools(o.alloc, o.all, s.vals, s.valid))
}

func (s *boolStore) load(in *stateIn, name string) {
	if c := in.next(name, arrow.FixedWidthTypes.Boolean); c != nil {
		getBools(c, s.vals, s.valid)
	}
}

func (s *stringStore) save(o *stateOut, name string) {
	o.add(name, emitStrings(o.alloc, o.all, s.valid, s.get))
}

func (s *stringStore) load(in *stateIn, name string) {
	c, _ := in.next(name, arrow.BinaryTypes.String).(*array.String)
	if c == nil {
		return
	}
	for g := 0; g < c.Len(); g++ {
		if c.IsValid(g) {
			if err := s.set(uint32(g), []byte(c.Value(g))); err != nil && in.err == nil {
				in.err = err
			}
		}
	}
}

func (nullStore) save(*stateOut, string) {}
func (nullStore) load(*stateIn, string)  {}
