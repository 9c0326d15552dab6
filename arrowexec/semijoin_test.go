package arrowexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/arrowexec/expr"
	"github.com/ferrisstreams/ferris/arrowexec/resource"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
)

// Subquery join tests use the join test streams (k nullable, v = row
// number, ts, _wm) for both inputs. The value of IN is k; the correlation
// key, when correlated, is v % 3 (or v itself for scalar lookups, which
// must be unique per key).

type sqCase struct {
	mode       SubqueryMode
	exists     bool
	correlated bool
	missing    bool // Missing: TRUE (IN/EXISTS) or 42 (scalar)
}

func (c sqCase) String() string {
	s := c.mode.String()
	if c.exists {
		s += "_exists"
	}
	if c.correlated {
		s += "_corr"
	}
	if c.missing {
		s += "_missing"
	}
	return s
}

func sqCol(i int) expr.Expr {
	f := joinTestSchema.Field(i)
	return expr.Col(i, f.Name, f.Type)
}

func (c sqCase) key(build bool) expr.Expr {
	if c.mode == ScalarJoin {
		return sqCol(1)
	}
	k, err := expr.Binary("%", sqCol(1), expr.Lit(int64(3), sqltypes.BigInt))
	if err != nil {
		panic(err)
	}
	return k
}

func (c sqCase) config() SubqueryJoinConfig {
	cfg := SubqueryJoinConfig{Query: "q", Subquery: "subquery (test)", Mode: c.mode, WM: 3}
	if c.correlated {
		cfg.ProbeKeys = []expr.Expr{c.key(false)}
		cfg.BuildKeys = []expr.Expr{c.key(true)}
	}
	fields := append([]arrow.Field(nil), joinTestSchema.Fields()[:3]...)
	switch c.mode {
	case ScalarJoin:
		cfg.BuildValue = sqCol(0)
		if c.missing {
			cfg.Missing = expr.Lit(int64(42), sqltypes.BigInt)
		}
		fields = append(fields, arrow.Field{Name: "x", Type: sqltypes.BigInt, Nullable: true})
	default:
		if !c.exists {
			cfg.ProbeValue, cfg.BuildValue = sqCol(0), sqCol(0)
		}
		if c.missing {
			cfg.Missing = expr.Lit(true, sqltypes.Boolean)
		}
		if c.mode == MarkJoin {
			fields = append(fields, arrow.Field{Name: "x", Type: sqltypes.Boolean, Nullable: true})
		}
	}
	fields = append(fields, joinTestSchema.Field(3))
	cfg.Schema = arrow.NewSchema(fields, nil)
	return cfg
}

// ref computes the expected output rows naively, row at a time.
func (c sqCase) ref(probe, build []jrow) ([]string, error) {
	keyOf := func(r jrow) int64 {
		if c.mode == ScalarJoin {
			return r.v
		}
		return r.v % 3
	}
	var out []string
	for _, p := range probe {
		var set []*int64
		for _, b := range build {
			if !c.correlated || keyOf(b) == keyOf(p) {
				set = append(set, b.k)
			}
		}
		if c.mode == ScalarJoin {
			val := "null"
			switch {
			case len(set) > 1:
				return nil, fmt.Errorf("returned %d rows", len(set))
			case len(set) == 1 && set[0] != nil:
				val = fmt.Sprint(*set[0])
			case len(set) == 0 && c.missing:
				val = "42"
			}
			out = append(out, fmt.Sprintf("%s %d %s %d", kstr(p.k), p.v, val, p.wm))
			continue
		}
		mark := "false"
		switch {
		case len(set) == 0:
			if c.missing {
				mark = "true"
			}
		case c.exists:
			mark = "true"
		case p.k == nil:
			mark = "null"
		case slices.ContainsFunc(set, func(x *int64) bool { return x != nil && *x == *p.k }):
			mark = "true"
		case slices.Contains(set, nil):
			mark = "null"
		}
		switch c.mode {
		case SemiJoin:
			if mark == "true" {
				out = append(out, fmt.Sprintf("%s %d %d", kstr(p.k), p.v, p.wm))
			}
		case AntiJoin:
			if mark == "false" {
				out = append(out, fmt.Sprintf("%s %d %d", kstr(p.k), p.v, p.wm))
			}
		default:
			out = append(out, fmt.Sprintf("%s %d %s %d", kstr(p.k), p.v, mark, p.wm))
		}
	}
	return out, nil
}

func kstr(k *int64) string {
	if k == nil {
		return "null"
	}
	return fmt.Sprint(*k)
}

// drainSubquery reads op to its end, rendering rows as "k v [x] wm" and
// checking that watermarks never go back.
func drainSubquery(t *testing.T, op Operator, appended bool) ([]string, error) {
	t.Helper()
	ctx := context.Background()
	if err := op.Open(ctx); err != nil {
		t.Fatal(err)
	}
	var out []string
	last := NoWatermark
	final := false
	for {
		msg, err := op.Next(ctx)
		if errors.Is(err, io.EOF) {
			if !final {
				t.Fatal("end of stream without the final watermark")
			}
			return out, nil
		}
		if err != nil {
			return out, err
		}
		if msg.Watermark < last {
			t.Fatalf("watermark went back from %d to %d", last, msg.Watermark)
		}
		last = msg.Watermark
		final = final || msg.Watermark == FinalWatermark
		if b := msg.Batch; b != nil {
			for r := 0; r < int(b.NumRows()); r++ {
				k := "null"
				if !b.Column(0).IsNull(r) {
					k = fmt.Sprint(b.Column(0).(*array.Int64).Value(r))
				}
				row := fmt.Sprintf("%s %d", k, b.Column(1).(*array.Int64).Value(r))
				wmCol := 3
				if appended {
					x := b.Column(3)
					switch {
					case x.IsNull(r):
						row += " null"
					case x.DataType().ID() == arrow.BOOL:
						row += fmt.Sprint(" ", x.(*array.Boolean).Value(r))
					default:
						row += fmt.Sprint(" ", x.(*array.Int64).Value(r))
					}
					wmCol = 4
				}
				row += fmt.Sprint(" ", b.Column(wmCol).(*array.Int64).Value(r))
				out = append(out, row)
			}
		}
		msg.Release()
	}
}

func genSubqueryRows(r *rand.Rand, n, domain int, nulls bool) []jrow {
	keys := make([]*int64, n)
	ts := make([]int64, n)
	for i := range keys {
		if !nulls || r.IntN(6) > 0 {
			keys[i] = kp(int64(r.IntN(domain)))
		}
		ts[i] = int64(i * 10)
	}
	return jrows(5, keys, ts)
}

// TestSubqueryJoinAgainstReference runs every mode, uncorrelated and
// correlated, with and without NULLs and a result for missing keys, at
// batch sizes 1, 3 and 64, against a row-at-a-time reference.
func TestSubqueryJoinAgainstReference(t *testing.T) {
	var cases []sqCase
	for _, mode := range []SubqueryMode{SemiJoin, AntiJoin, MarkJoin} {
		for _, exists := range []bool{false, true} {
			for _, corr := range []bool{false, true} {
				for _, missing := range []bool{false, true} {
					cases = append(cases, sqCase{mode: mode, exists: exists, correlated: corr, missing: missing})
				}
			}
		}
	}
	cases = append(cases, sqCase{mode: ScalarJoin, correlated: true}, sqCase{mode: ScalarJoin, correlated: true, missing: true})
	for ci, c := range cases {
		for _, nulls := range []bool{false, true} {
			for _, maxBatch := range []int{1, 3, 64} {
				t.Run(fmt.Sprintf("%s_nulls=%v_b%d", c, nulls, maxBatch), func(t *testing.T) {
					seed := uint64(ci*1000 + maxBatch)
					r := rand.New(rand.NewPCG(seed, 3))
					probe := genSubqueryRows(r, 100+r.IntN(50), 8, nulls)
					nb := r.IntN(12) // sometimes empty
					if ci%5 == 0 {
						nb = 0
					}
					build := genSubqueryRows(r, nb, 10, nulls)
					if c.mode == ScalarJoin {
						// unique keys v, some missing
						var b []jrow
						for _, x := range build {
							if x.v%2 == 0 {
								b = append(b, x)
							}
						}
						build = b
					}
					want, wantErr := c.ref(probe, build)
					mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
					defer mem.AssertSize(t, 0)
					rm := resource.NewManager(mem, 0)
					alloc := rm.Query("q")
					p := &msgSource{alloc: mem, rows: probe, delay: 5, r: rand.New(rand.NewPCG(seed, 1)), maxBatch: maxBatch}
					b := &msgSource{alloc: mem, rows: build, delay: 5, r: rand.New(rand.NewPCG(seed, 2)), maxBatch: maxBatch}
					op, err := NewSubqueryJoin(alloc, p, b, c.config())
					if err != nil {
						t.Fatal(err)
					}
					got, err := drainSubquery(t, op, c.mode == MarkJoin || c.mode == ScalarJoin)
					if cerr := op.Close(); cerr != nil {
						t.Fatal(cerr)
					}
					if alloc.Reserved() != 0 {
						t.Fatalf("%d bytes still reserved", alloc.Reserved())
					}
					if wantErr != nil || err != nil {
						if wantErr == nil || err == nil || !strings.Contains(err.Error(), wantErr.Error()) {
							t.Fatalf("error %v, want %v", err, wantErr)
						}
						return
					}
					if !slices.Equal(got, want) {
						t.Fatalf("got %d rows, want %d\n%s", len(got), len(want), diffRows(got, want))
					}
				})
			}
		}
	}
}

// TestSubqueryJoinScalarTooManyRows: a key with two rows fails the query
// when a probe row looks it up, naming the subquery and the key.
func TestSubqueryJoinScalarTooManyRows(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	build := jrows(0, []*int64{kp(1), kp(2), kp(3)}, []int64{0, 1, 2})
	build[1].v, build[2].v = 7, 7 // key 7 twice
	probe := jrows(0, []*int64{kp(1), kp(2)}, []int64{0, 1})
	probe[0].v, probe[1].v = 0, 7
	c := sqCase{mode: ScalarJoin, correlated: true}
	cfg := c.config()
	cfg.Subquery = "scalar subquery (SELECT x) at line 1, column 2"
	cfg.KeyText = []string{"t.v"}
	p := &msgSource{alloc: mem, rows: probe, r: rand.New(rand.NewPCG(1, 1)), maxBatch: 1}
	b := &msgSource{alloc: mem, rows: build, r: rand.New(rand.NewPCG(1, 2)), maxBatch: 3}
	op, err := NewSubqueryJoin(memory.NewGoAllocator(), p, b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	got, err := drainSubquery(t, op, true)
	if len(got) != 1 || !strings.HasPrefix(got[0], "1 0 1 ") {
		t.Fatalf("rows before the error: %v", got)
	}
	want := "scalar subquery (SELECT x) at line 1, column 2 returned 2 rows for t.v = 7; a scalar subquery must return at most one row"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want %q", err, want)
	}
}

// TestSubqueryJoinSharedProducer: the probe and build inputs are fed by
// one producer through Inlets of depth 1, probe first (a subquery over
// the outer query's own stream). The operator keeps probe messages while
// it builds, so the producer never blocks for good.
func TestSubqueryJoinSharedProducer(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rm := resource.NewManager(mem, 0)
	probeIn := NewInlet(joinTestSchema, 1)
	buildIn := NewInlet(joinTestSchema, 1)
	var keys []*int64
	var ts []int64
	for i := range 200 {
		keys = append(keys, kp(int64(i%7)))
		ts = append(ts, int64(i))
	}
	rows := jrows(0, keys, ts)
	c := sqCase{mode: SemiJoin}
	cfg := c.config()
	cfg.BuildValue = expr.Lit(int64(3), sqltypes.BigInt) // IN (SELECT 3 FROM s): k = 3
	alloc := rm.Query("q")
	op, err := NewSubqueryJoin(alloc, probeIn, buildIn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	done := make(chan error, 1)
	go func() {
		for i := 0; i < len(rows); i += 10 {
			b := jrowBatch(mem, rows[i:i+10])
			if err := fanout(ctx, Message{Batch: b, Watermark: rows[i].wm}, []*Inlet{probeIn, buildIn}); err != nil {
				done <- err
				return
			}
		}
		err := fanout(ctx, Message{Watermark: FinalWatermark}, []*Inlet{probeIn, buildIn})
		finish([]*Inlet{probeIn, buildIn}, nil)
		done <- err
	}()
	got, err := drainSubquery(t, op, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := op.Close(); err != nil {
		t.Fatal(err)
	}
	if len(got) != 29 { // i%7 == 3 for i < 200
		t.Fatalf("got %d rows, want 29", len(got))
	}
	if alloc.Reserved() != 0 {
		t.Fatalf("%d bytes still reserved", alloc.Reserved())
	}
}

// TestSubqueryJoinMemoryLimit: probe rows kept while the build waits are
// reserved; past the limit the query fails with ErrMemoryLimit.
func TestSubqueryJoinMemoryLimit(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rm := resource.NewManager(mem, 64<<10)
	var keys []*int64
	var ts []int64
	for i := range 20_000 {
		keys = append(keys, kp(int64(i)))
		ts = append(ts, int64(i))
	}
	probe := &msgSource{alloc: mem, rows: jrows(0, keys, ts), r: rand.New(rand.NewPCG(1, 1)), maxBatch: 500}
	build := NewInlet(joinTestSchema, 1) // never ends: every probe row waits
	op, err := NewSubqueryJoin(rm.Query("q"), probe, build, sqCase{mode: SemiJoin, exists: true}.config())
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	_, err = op.Next(context.Background())
	if !errors.Is(err, resource.ErrMemoryLimit) {
		t.Fatalf("want ErrMemoryLimit, got %v", err)
	}
}

// batchRepeater returns batch n times, then the final watermark and EOF.
type batchRepeater struct {
	batch arrow.RecordBatch
	n     int
	ended bool
}

func (s *batchRepeater) Schema() *arrow.Schema      { return s.batch.Schema() }
func (s *batchRepeater) Open(context.Context) error { return nil }
func (s *batchRepeater) Close() error               { return nil }
func (s *batchRepeater) Next(context.Context) (Message, error) {
	switch {
	case s.n > 0:
		s.n--
		s.batch.Retain()
		return Message{Batch: s.batch, Watermark: NoWatermark}, nil
	case !s.ended:
		s.ended = true
		return Message{Watermark: FinalWatermark}, nil
	}
	return Message{}, io.EOF
}

// BenchmarkSubqueryJoin probes 4096-row batches against a subquery of
// 100,000 distinct keys (half the probe keys match): IN as a semi join,
// and a correlated scalar lookup.
func BenchmarkSubqueryJoin(b *testing.B) {
	const keys, batch = 100_000, 4096
	mk := func(n, stride int) arrow.RecordBatch {
		rows := make([]jrow, n)
		for i := range rows {
			rows[i] = jrow{k: kp(int64(i * stride % (2 * keys))), v: int64(i * stride % (2 * keys))}
		}
		return jrowBatch(memory.NewGoAllocator(), rows)
	}
	build, probe := mk(keys, 2), mk(batch, 7)
	defer build.Release()
	defer probe.Release()
	for _, c := range []sqCase{{mode: SemiJoin}, {mode: ScalarJoin, correlated: true}} {
		b.Run(c.String(), func(b *testing.B) {
			b.ReportAllocs()
			perOp := 200
			op, err := NewSubqueryJoin(memory.NewGoAllocator(), &batchRepeater{batch: probe, n: perOp * b.N},
				&batchRepeater{batch: build, n: 1}, c.config())
			if err != nil {
				b.Fatal(err)
			}
			defer op.Close()
			ctx := context.Background()
			if err := op.Open(ctx); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for {
				msg, err := op.Next(ctx)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
				msg.Release()
			}
			rows := perOp * b.N * batch
			b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
