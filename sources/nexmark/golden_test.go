package nexmark

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"os"
	"strconv"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/ferrisstreams/ferris/arrowexec"
)

// goldenCase is one source configuration whose whole output is hashed.
type goldenCase struct {
	name  string
	kind  Kind
	cols  []string // nil: the kind's standard columns
	opts  []string // options besides kind
	short bool     // run under -short too
}

// goldenCases cover both seeds, every kind, out-of-order groups, another
// event rate and base time, column subsets in another order, and batch
// sizes that cut the sequence at other places.
var goldenCases = []goldenCase{
	{name: "bid-42", kind: KindBid, opts: []string{"events", "200000"}, short: true},
	{name: "bid-7-bs1000", kind: KindBid, opts: []string{"events", "200000", "seed", "7", "batch_size", "1000"}},
	{name: "bid-7-ooo-subset", kind: KindBid, cols: []string{"extra", "url", "price", "channel", "date_time"},
		opts: []string{"events", "200000", "seed", "7", "out_of_order_group_size", "100", "event_rate", "1000", "base_time", "2020-01-02T03:04:05.678Z", "batch_size", "777"}},
	{name: "bid-42-bs1", kind: KindBid, opts: []string{"events", "3000", "batch_size", "1"}, short: true},
	{name: "bid-minus3-2cols", kind: KindBid, cols: []string{"bidder", "auction"}, opts: []string{"events", "100000", "seed", "-3", "batch_size", "50"}},
	{name: "auction-42", kind: KindAuction, opts: []string{"events", "200000"}, short: true},
	{name: "auction-7-ooo", kind: KindAuction, opts: []string{"events", "200000", "seed", "7", "out_of_order_group_size", "37", "batch_size", "333"}},
	{name: "auction-7-subset", kind: KindAuction, cols: []string{"reserve", "expires", "description", "category"}, opts: []string{"events", "100000", "seed", "7", "event_rate", "3"}},
	{name: "person-42", kind: KindPerson, opts: []string{"events", "200000"}, short: true},
	{name: "person-7-ooo", kind: KindPerson, opts: []string{"events", "200000", "seed", "7", "out_of_order_group_size", "1000", "batch_size", "100"}},
	{name: "person-7-subset", kind: KindPerson, cols: []string{"state", "extra", "name", "city", "credit_card"}, opts: []string{"events", "100000", "seed", "7"}},
}

// goldenSums are the SHA-256 sums of goldenCases computed with the
// generator of commit 2edf642, before generation was vectorised: the
// events (every value and batch boundary) must never change for a given
// seed and options, since checkpoints and recorded results rely on them.
var goldenSums = map[string]string{
	"bid-42":           "6776d5f17c4d237fbcd0a17cf288beb3725216bd44705d310ee177d34b22766d",
	"bid-7-bs1000":     "adc95bd6aeb3b4f8180b98b44bf6df52d65165864f4ed882a237ea9b59a04948",
	"bid-7-ooo-subset": "2b63f6193db5b0101313dd026643fabcfb2009ff87404b81a63d1afa6ad5adfc",
	"bid-42-bs1":       "8474e90e1d41b87e5d19f0526a4ba955e3c8a0eaae897fa112325fbcee9d823f",
	"bid-minus3-2cols": "86b87aafc57eeacb1ad842299aa41211e89b3595dd8fec9a43a424de643ce626",
	"auction-42":       "95bb86d1b6ad7ae16bc2f000d6f3914c95642fb6681e6786c97b818eebf3a790",
	"auction-7-ooo":    "2a5da89b2ffef0fe4f22ea5a9911e669e6d0348f65c1a2b106f6f793fa2e77ba",
	"auction-7-subset": "681f8b8992a43c088cff5765aaad31e5153a6592f7d8888a8fda9d1c851861b5",
	"person-42":        "2c0731f98680fd5c4090e9b7a194f87a608978c1d98e928a6f7931e5227ed27a",
	"person-7-ooo":     "a2727ca7e6e6b4fa138d687360bcb669f0e90437dfb771c4a4d717430d304c15",
	"person-7-subset":  "3683745a0f0b98896a4384b5fc967de7496aed4e6613151117441ac82988f8ad",
}

// goldenGeneratorSums are the sums of the Generator API's events (see
// hashGenerator), from the same commit.
var goldenGeneratorSums = map[string]string{
	"42": "ba4db7927a8f08ec89a55212ab58633673e4a4ad17b4347bfc2252600e723ca7",
	"7":  "540594000d498f92660af9fe0dcd62cdae2f358abf79a727fc5963e15d84391c",
}

// TestGoldenOutput locks the source's output: every batch's row count,
// every column value and the hook's emissions hash to the recorded sums.
// Run with NEXMARK_GOLDEN_PRINT=1 to print the sums instead.
func TestGoldenOutput(t *testing.T) {
	printing := os.Getenv("NEXMARK_GOLDEN_PRINT") != ""
	for _, c := range goldenCases {
		if testing.Short() && !c.short && !printing {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			sum := hashSource(t, c)
			if printing {
				t.Logf("GOLDEN %q: %q,", c.name, sum)
				return
			}
			if want := goldenSums[c.name]; sum != want {
				t.Errorf("output hashes to %s, want %s", sum, want)
			}
		})
	}
}

// TestGoldenGenerator locks the events of the Generator API (used by the
// benchmark's row-at-a-time reference) in the same way.
func TestGoldenGenerator(t *testing.T) {
	printing := os.Getenv("NEXMARK_GOLDEN_PRINT") != ""
	for _, seed := range []uint64{42, 7} {
		name := strconv.FormatUint(seed, 10)
		sum := hashGenerator(seed, 100_000)
		if printing {
			t.Logf("GOLDEN %q: %q,", name, sum)
			continue
		}
		if want := goldenGeneratorSums[name]; sum != want {
			t.Errorf("seed %d: generator events hash to %s, want %s", seed, sum, want)
		}
	}
}

func hashSource(t *testing.T, c goldenCase) string {
	t.Helper()
	mem := checked(t)
	std := schemaOf(c.kind)
	schema := std
	if c.cols != nil {
		var fs []arrow.Field
		for _, name := range c.cols {
			i := std.FieldIndices(name)[0]
			fs = append(fs, std.Field(i))
		}
		schema = arrow.NewSchema(fs, nil)
	}
	o := arrowexec.Options{"connector": "nexmark", "kind": c.kind.String()}
	for i := 0; i+1 < len(c.opts); i += 2 {
		o[c.opts[i]] = c.opts[i+1]
	}
	h := sha256.New()
	var ems []Emission
	op, err := Factory(WithEmitHook(func(e Emission) { ems = append(ems, e) }))(arrowexec.SourceSpec{Name: "golden", Schema: schema, Options: o, Alloc: mem})
	if err != nil {
		t.Fatal(err)
	}
	if err := op.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	for {
		m, err := op.Next(context.Background())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if m.Watermark != arrowexec.NoWatermark {
			t.Fatalf("watermark %d", m.Watermark)
		}
		putInt(h, m.Rows())
		for _, col := range m.Batch.Columns() {
			n := col.Len()
			switch a := col.(type) {
			case *array.Int64:
				for i := range n {
					putInt(h, a.Value(i))
				}
			case *array.Timestamp:
				for i := range n {
					putInt(h, int64(a.Value(i)))
				}
			case *array.String:
				for i := range n {
					v := a.Value(i)
					putInt(h, int64(len(v)))
					h.Write([]byte(v))
				}
			default:
				t.Fatalf("column type %s", col.DataType())
			}
			if col.NullN() != 0 {
				t.Fatalf("%d nulls", col.NullN())
			}
		}
		m.Release()
	}
	for _, e := range ems {
		putInt(h, int64(e.Rows))
		putInt(h, e.Events)
		putInt(h, e.MaxEventTime)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// hashGenerator hashes the first n events of DefaultConfig with seed
// seed and out-of-order groups of 10, through the Generator API.
func hashGenerator(seed uint64, n int64) string {
	cfg := DefaultConfig()
	cfg.Seed = seed
	cfg.OutOfOrderGroupSize = 10
	g := NewGenerator(cfg)
	h := sha256.New()
	str := func(b []byte) { putInt(h, int64(len(b))); h.Write(b) }
	var b Bid
	var a Auction
	var p Person
	for i := range n {
		id := g.EventID(i)
		putInt(h, id)
		putInt(h, g.Time(i))
		switch KindOf(id) {
		case KindBid:
			g.Bid(id, &b)
			for _, v := range []int64{b.Auction, b.Bidder, b.Price, b.DateTime} {
				putInt(h, v)
			}
			str(b.Channel)
			str(b.URL)
			str(b.Extra)
		case KindAuction:
			g.Auction(id, &a)
			for _, v := range []int64{a.ID, a.InitialBid, a.Reserve, a.DateTime, a.Expires, a.Seller, a.Category} {
				putInt(h, v)
			}
			str(a.ItemName)
			str(a.Desc)
			str(a.Extra)
		default:
			g.Person(id, &p)
			putInt(h, p.ID)
			putInt(h, p.DateTime)
			str([]byte(p.Name))
			str(p.Email)
			str(p.CreditCard)
			str([]byte(p.City))
			str([]byte(p.State))
			str(p.Extra)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

func putInt(h hash.Hash, v int64) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(v))
	h.Write(b[:])
}
