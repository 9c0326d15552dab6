package nexmark

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/arrowexec"
)

func schemaOf(k Kind) *arrow.Schema {
	var fs []arrow.Field
	for _, c := range standardColumns[k] {
		fs = append(fs, arrow.Field{Name: c.name, Type: c.typ, Nullable: true})
	}
	return arrow.NewSchema(fs, nil)
}

func open(t *testing.T, mem memory.Allocator, name string, schema *arrow.Schema, kv ...string) (arrowexec.Operator, error) {
	t.Helper()
	o := arrowexec.Options{"connector": "nexmark"}
	for i := 0; i+1 < len(kv); i += 2 {
		o[kv[i]] = kv[i+1]
	}
	op, err := Factory()(arrowexec.SourceSpec{Name: name, Schema: schema, Options: o, Alloc: mem})
	if err != nil {
		return nil, err
	}
	return op, op.Open(context.Background())
}

// drain reads every batch and renders rows as "v1|v2|...".
func drain(t *testing.T, op arrowexec.Operator, maxBatch int) []string {
	t.Helper()
	defer op.Close()
	var rows []string
	for {
		m, err := op.Next(context.Background())
		if err == io.EOF {
			return rows
		}
		if err != nil {
			t.Fatal(err)
		}
		if n := int(m.Rows()); n == 0 || n > maxBatch {
			t.Fatalf("batch of %d rows (batch_size %d)", n, maxBatch)
		}
		rows = appendRows(rows, m)
		m.Release()
	}
}

// appendRows appends the rows of m rendered as "v1|v2|...".
func appendRows(rows []string, m arrowexec.Message) []string {
	for i := range int(m.Rows()) {
		parts := make([]string, m.Batch.NumCols())
		for c, col := range m.Batch.Columns() {
			switch a := col.(type) {
			case *array.Int64:
				parts[c] = strconv.FormatInt(a.Value(i), 10)
			case *array.String:
				parts[c] = a.Value(i)
			case *array.Timestamp:
				parts[c] = strconv.FormatInt(int64(a.Value(i)), 10)
			}
		}
		rows = append(rows, strings.Join(parts, "|"))
	}
	return rows
}

func checked(t *testing.T) *memory.CheckedAllocator {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return mem
}

func TestSourceDeterministicAcrossBatchSizes(t *testing.T) {
	for _, k := range []Kind{KindBid, KindAuction, KindPerson} {
		var first []string
		for _, bs := range []int{1, 7, 4096} {
			mem := checked(t)
			op, err := open(t, mem, "s", schemaOf(k), "kind", k.String(), "events", "5000", "batch_size", strconv.Itoa(bs))
			if err != nil {
				t.Fatal(err)
			}
			rows := drain(t, op, bs)
			if first == nil {
				first = rows
				continue
			}
			if strings.Join(rows, "\n") != strings.Join(first, "\n") {
				t.Fatalf("%s: batch size %d changes the rows", k, bs)
			}
		}
		want := map[Kind]int{KindBid: 4600, KindAuction: 300, KindPerson: 100}[k]
		if len(first) != want {
			t.Errorf("%s: %d rows of 5000 events, want %d", k, len(first), want)
		}
	}
}

func TestGeneratorRules(t *testing.T) {
	g := NewGenerator(DefaultConfig())
	const n = 500_000
	var bids, hotAuction, hotBidder, hotChan, withChanID int
	var bidBytes, aucBytes, perBytes, persons, auctions int
	prices := map[int]int{} // decade of price -> count
	urlRE := regexp.MustCompile(`^https://www\.nexmark\.com/[a-z_]{3,4}/[a-z_]{3,4}/[a-z_]{3,4}/item\.htm\?query=1(&channel_id=-?\d+)?$`)
	var b Bid
	var a Auction
	var p Person
	lastPersonID, lastAuctionID := int64(999), int64(999)
	for id := int64(0); id < n; id++ {
		ts := g.timeOf(id)
		if want := DefaultBaseTime + id/10; ts != want {
			t.Fatalf("event %d at %d, want %d", id, ts, want)
		}
		switch KindOf(id) {
		case KindPerson:
			g.Person(id, &p)
			persons++
			if p.ID != lastPersonID+1 {
				t.Fatalf("person id %d after %d", p.ID, lastPersonID)
			}
			lastPersonID = p.ID
			perBytes += 8 + len(p.Name) + len(p.Email) + len(p.CreditCard) + len(p.City) + len(p.State) + len(p.Extra)
			if !regexp.MustCompile(`^[a-z ]*@[a-z ]*\.com$`).Match(p.Email) || len(p.CreditCard) != 19 {
				t.Fatalf("person %+v", p)
			}
		case KindAuction:
			g.Auction(id, &a)
			auctions++
			if a.ID != lastAuctionID+1 {
				t.Fatalf("auction id %d after %d", a.ID, lastAuctionID)
			}
			lastAuctionID = a.ID
			if a.Category < 10 || a.Category > 14 || a.Reserve < a.InitialBid || a.Expires <= a.DateTime || a.Seller < 1000 || a.Seller > lastPersonID+10 {
				t.Fatalf("auction %+v (last person %d)", a, lastPersonID)
			}
			aucBytes += 8 + len(a.ItemName) + len(a.Desc) + 40 + len(a.Extra)
		default:
			g.Bid(id, &b)
			bids++
			if b.Auction == (lastAuctionID-1000)/100*100+1000 {
				hotAuction++
			}
			if b.Bidder == (lastPersonID-1000)/100*100+1001 {
				hotBidder++
			}
			switch ch := string(b.Channel); {
			case ch == "Google" || ch == "Facebook" || ch == "Baidu" || ch == "Apple":
				hotChan++
			case !strings.HasPrefix(ch, "channel-"):
				t.Fatalf("channel %q", ch)
			}
			if strings.Contains(string(b.URL), "channel_id=") {
				withChanID++
			}
			if !urlRE.Match(b.URL) {
				t.Fatalf("url %q", b.URL)
			}
			if b.Auction > lastAuctionID+10 || b.Auction < 1000 || b.Bidder > lastPersonID+10 {
				t.Fatalf("bid %+v", b)
			}
			if b.Price < 100 || b.Price > 100_000_000 {
				t.Fatalf("price %d", b.Price)
			}
			prices[len(strconv.FormatInt(b.Price, 10))]++
			bidBytes += 32 + len(b.Extra)
		}
	}
	if persons != n/50 || auctions != 3*n/50 || bids != 46*n/50 {
		t.Errorf("persons %d auctions %d bids %d", persons, auctions, bids)
	}
	near := func(what string, got, want, tol float64) {
		t.Helper()
		if got < want-tol || got > want+tol {
			t.Errorf("%s = %.3f, want %.3f ± %.3f", what, got, want, tol)
		}
	}
	// hot auctions: 1/2 directly, plus the random picks landing on one
	near("hot auction share", float64(hotAuction)/float64(bids), 0.5, 0.03)
	near("hot bidder share", float64(hotBidder)/float64(bids), 0.75, 0.03)
	near("hot channel share", float64(hotChan)/float64(bids), 0.5, 0.01)
	near("avg bid bytes", float64(bidBytes)/float64(bids), avgBidBytes, 2)
	near("avg auction bytes", float64(aucBytes)/float64(auctions), avgAuctionBytes, 5)
	near("avg person bytes", float64(perBytes)/float64(persons), avgPersonBytes, 3)
	// log-uniform prices: each decade of 100..10^8 holds about 1/6
	for digits := 3; digits <= 8; digits++ {
		near(fmt.Sprintf("prices with %d digits", digits), float64(prices[digits])/float64(bids), 1.0/6, 0.01)
	}
	if withChanID == 0 {
		t.Error("no url carries a channel_id")
	}
}

func TestOutOfOrderGroups(t *testing.T) {
	cfg := DefaultConfig()
	cfg.OutOfOrderGroupSize = 100
	g := NewGenerator(cfg)
	seen := map[int64]bool{}
	inversions := 0
	for n := int64(0); n < 1000; n++ {
		id := g.EventID(n)
		if id/100 != n/100 || seen[id] {
			t.Fatalf("event %d has id %d", n, id)
		}
		seen[id] = true
		if n > 0 && g.Time(n) < g.Time(n-1) {
			inversions++
		}
	}
	if inversions == 0 {
		t.Error("no event out of order")
	}
	// the source's rows are the same events, permuted within groups
	mem := checked(t)
	op, err := open(t, mem, "bid", schemaOf(KindBid), "events", "1000", "out_of_order_group_size", "100")
	if err != nil {
		t.Fatal(err)
	}
	if rows := drain(t, op, 4096); len(rows) != 920 {
		t.Errorf("%d bids", len(rows))
	}
}

func TestSourceColumnsAndOptions(t *testing.T) {
	mem := checked(t)
	sub := arrow.NewSchema([]arrow.Field{{Name: "date_time", Type: schemaOf(KindBid).Field(5).Type}, {Name: "price", Type: schemaOf(KindBid).Field(2).Type}}, nil)
	op, err := open(t, mem, "bids", sub, "events", "100")
	if err != nil {
		t.Fatal(err)
	}
	full, err := open(t, mem, "b", schemaOf(KindBid), "kind", "bid", "events", "100")
	if err != nil {
		t.Fatal(err)
	}
	got, all := drain(t, op, 4096), drain(t, full, 4096)
	for i := range all {
		f := strings.Split(all[i], "|")
		if got[i] != f[5]+"|"+f[2] {
			t.Fatalf("row %d: %s vs %s", i, got[i], all[i])
		}
	}
	bad := []struct {
		schema *arrow.Schema
		kv     []string
		err    string
	}{
		{arrow.NewSchema([]arrow.Field{{Name: "bogus", Type: arrow.PrimitiveTypes.Int64}}, nil), []string{"kind", "bid"}, `column bogus is not a column of the nexmark bid stream (its columns: auction BIGINT, bidder BIGINT, price BIGINT`},
		{arrow.NewSchema([]arrow.Field{{Name: "price", Type: arrow.BinaryTypes.String}}, nil), []string{"kind", "bid"}, `column price: declared VARCHAR, but nexmark bid.price is BIGINT`},
		{schemaOf(KindBid), nil, `option kind is required`},
		{schemaOf(KindBid), []string{"kind", "bids"}, `option kind: expected bid, auction or person, found "bids"`},
		{schemaOf(KindBid), []string{"kind", "bid", "events", "-1"}, `option events: expected an integer >= 0`},
		{schemaOf(KindBid), []string{"kind", "bid", "event_rate", "0"}, `option event_rate`},
		{schemaOf(KindBid), []string{"kind", "bid", "speed", "1"}, `unknown option "speed"`},
		{schemaOf(KindBid), []string{"kind", "bid", "base_time", "yesterday"}, `option base_time`},
	}
	for _, c := range bad {
		_, err := open(t, mem, "stream", c.schema, c.kv...)
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%v: error %v, want %q", c.kv, err, c.err)
		}
	}
}

func TestSourceRateAndHook(t *testing.T) {
	mem := checked(t)
	var ems []Emission
	op, err := Factory(WithEmitHook(func(e Emission) { ems = append(ems, e) }))(arrowexec.SourceSpec{
		Name: "bid", Schema: schemaOf(KindBid), Options: arrowexec.Options{"events": "300", "rate": "1000"},
		BatchSize: 50, Linger: 20 * time.Millisecond, Alloc: mem,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := op.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	rows := drain(t, op, 50)
	if el := time.Since(start); el < 250*time.Millisecond {
		t.Errorf("300 events at 1000/s took %s", el)
	}
	if len(rows) != 276 {
		t.Errorf("%d bids", len(rows))
	}
	if len(ems) == 0 || ems[len(ems)-1].Events != 300 {
		t.Fatalf("emissions %+v", ems)
	}
	total := 0
	for _, e := range ems {
		total += e.Rows
	}
	if total != 276 {
		t.Errorf("hook saw %d rows", total)
	}
	// cancelling stops a waiting source
	op2, err := open(t, mem, "bid", schemaOf(KindBid), "events", "0", "rate", "1")
	if err != nil {
		t.Fatal(err)
	}
	defer op2.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	for {
		m, err := op2.Next(ctx)
		if err != nil {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatal(err)
			}
			break
		}
		m.Release()
	}
}

func BenchmarkSourceBid(b *testing.B) {
	benchSource(b, KindBid)
}

func BenchmarkSourcePerson(b *testing.B) {
	benchSource(b, KindPerson)
}

func BenchmarkSourceAuction(b *testing.B) {
	benchSource(b, KindAuction)
}

// benchSource reports events/s: event numbers of every kind gone through.
func benchSource(b *testing.B, k Kind) {
	const events = 1_000_000
	b.ReportAllocs()
	cpu0 := cpuTime()
	for range b.N {
		op, err := Factory()(arrowexec.SourceSpec{Name: k.String(), Schema: schemaOf(k), Options: arrowexec.Options{"events": strconv.Itoa(events), "batch_size": benchBatch()}, Alloc: memory.DefaultAllocator})
		if err != nil {
			b.Fatal(err)
		}
		_ = op.Open(context.Background())
		for {
			m, err := op.Next(context.Background())
			if err != nil {
				break
			}
			m.Release()
		}
		op.Close()
	}
	b.ReportMetric(float64(events*b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(events*b.N)/(cpuTime()-cpu0).Seconds(), "events/cpu-s")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchBatch() string {
	if v := os.Getenv("NEXMARK_BATCH"); v != "" {
		return v
	}
	return "4096"
}

// TestColumnArrays: string columns referencing any bytes (empty values,
// overlapping references included), copied by chunks (src with room past
// the values) or not, and int64 columns come out as written, through the
// allocator given.
func TestColumnArrays(t *testing.T) {
	mem := checked(t)
	letters := []byte("abcdefghijklmnopqrstuvwxyz0123456789")
	for _, src := range [][]byte{letters, padded(letters)} {
		col := strCol{src: src, start: []int32{0, 3, 3, 9, 1, 35, 2}, n: []int32{1, 7, 0, 1, 5, 1, 17}}
		want := []string{"a", "defghij", "", "j", "bcdef", "9", "cdefghijklmnopqrs"}
		arr := stringArray(mem, arrow.BinaryTypes.String, &col).(*array.String)
		for i, v := range want {
			if arr.Value(i) != v {
				t.Errorf("len(src) %d: row %d: %q, want %q", len(src), i, arr.Value(i), v)
			}
		}
		if got := len(arr.ValueBytes()); got != 32 {
			t.Errorf("%d bytes of data", got)
		}
		arr.Release()
	}
	empty := stringArray(mem, arrow.BinaryTypes.String, &strCol{src: padded(nil), start: []int32{0, 0}, n: []int32{0, 0}})
	defer empty.Release()
	if empty.Len() != 2 || empty.(*array.String).Value(1) != "" {
		t.Errorf("%d rows", empty.Len())
	}
	ints := int64Array(mem, arrow.PrimitiveTypes.Int64, []int64{3, -1, 1 << 62}).(*array.Int64)
	defer ints.Release()
	if v := ints.Int64Values(); len(v) != 3 || v[0] != 3 || v[1] != -1 || v[2] != 1<<62 {
		t.Errorf("int64 values %v", v)
	}
}

// TestKindRange: the remainders of kindRange are those KindOf maps to
// the kind.
func TestKindRange(t *testing.T) {
	for id := int64(0); id < 3*totalProportion; id++ {
		for _, k := range []Kind{KindPerson, KindAuction, KindBid} {
			lo, hi := kindRange(k)
			rem := id % totalProportion
			if in := rem >= lo && rem < hi; in != (KindOf(id) == k) {
				t.Fatalf("id %d, kind %s: in range %v", id, k, in)
			}
		}
	}
}
