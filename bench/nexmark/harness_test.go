// Package nexmark_test checks the Nexmark queries of queries/ against
// independent row-at-a-time Go implementations over the same generated
// events. The generator itself lives in sources/nexmark (a connector must be
// importable by cmd/ferris and server, which bench/ is not); the runner is
// `ferris bench nexmark` (cmd/ferris/bench.go) and the `go test -bench`
// equivalents are in bench/nexmark_bench_test.go.
package nexmark_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/arrowexec/resource"
	"github.com/ferrisstreams/ferris/plan"
	"github.com/ferrisstreams/ferris/sinks"
	"github.com/ferrisstreams/ferris/sources/nexmark"
)

// ---- generated events, as plain Go values ----

type bidEv struct {
	auction, bidder, price int64
	channel, url           string
	dt                     int64
	extra                  string
}

type auctionEv struct {
	id                  int64
	itemName, desc      string
	initialBid, reserve int64
	dt, expires         int64
	seller, category    int64
	extra               string
}

type personEv struct {
	id                int64
	name, email, card string
	city, state       string
	dt                int64
	extra             string
}

type world struct {
	bids     []bidEv
	auctions []auctionEv
	persons  []personEv
}

// generate returns the first n events of the standard configuration at
// the given event rate, split by kind, each kind in event order.
func generate(n, eventRate int64) *world {
	cfg := nexmark.DefaultConfig()
	cfg.EventRate = eventRate
	g := nexmark.NewGenerator(cfg)
	w := &world{}
	var b nexmark.Bid
	var a nexmark.Auction
	var p nexmark.Person
	for i := range n {
		id := g.EventID(i)
		switch nexmark.KindOf(id) {
		case nexmark.KindBid:
			g.Bid(id, &b)
			w.bids = append(w.bids, bidEv{b.Auction, b.Bidder, b.Price, string(b.Channel), string(b.URL), b.DateTime, string(b.Extra)})
		case nexmark.KindAuction:
			g.Auction(id, &a)
			w.auctions = append(w.auctions, auctionEv{a.ID, string(a.ItemName), string(a.Desc), a.InitialBid, a.Reserve,
				a.DateTime, a.Expires, a.Seller, a.Category, string(a.Extra)})
		default:
			g.Person(id, &p)
			w.persons = append(w.persons, personEv{p.ID, p.Name, string(p.Email), string(p.CreditCard), p.City, p.State, p.DateTime, string(p.Extra)})
		}
	}
	return w
}

// ---- rows and their canonical text ----

// ts is a TIMESTAMP value (ms since the epoch).
type ts int64

// dec is an exact DECIMAL value: unscaled / 10^scale.
type dec struct {
	unscaled int64
	scale    int
}

type kv struct {
	k string
	v any
}

// row is an output row, columns in select order.
type row []kv

// r builds a row from alternating names and values.
func r(kvs ...any) row {
	out := make(row, 0, len(kvs)/2)
	for i := 0; i+1 < len(kvs); i += 2 {
		out = append(out, kv{kvs[i].(string), kvs[i+1]})
	}
	return out
}

func (x row) get(k string) any {
	for _, c := range x {
		if c.k == k {
			return c.v
		}
	}
	return nil
}

// canonValue renders a value so that the engine's JSON and the reference's
// Go values compare equal: numbers with a fraction (DECIMAL, DOUBLE) to 12
// significant digits, integers exactly, TIMESTAMP as RFC 3339 with ms.
func canonValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return strconv.Quote(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case int:
		return strconv.Itoa(x)
	case float64:
		return strconv.FormatFloat(x, 'g', 12, 64)
	case ts:
		return strconv.Quote(time.UnixMilli(int64(x)).UTC().Format("2006-01-02T15:04:05.000Z"))
	case dec:
		f := float64(x.unscaled)
		for range x.scale {
			f /= 10
		}
		if x.scale > 0 {
			// the exact quotient, correctly rounded, as ParseFloat gives
			f, _ = strconv.ParseFloat(decText(x), 64)
		}
		return strconv.FormatFloat(f, 'g', 12, 64)
	case json.Number:
		s := string(x)
		if strings.ContainsAny(s, ".eE") {
			f, err := x.Float64()
			if err != nil {
				return s
			}
			return strconv.FormatFloat(f, 'g', 12, 64)
		}
		return s
	case bool:
		return strconv.FormatBool(x)
	}
	return fmt.Sprintf("%v", v)
}

func decText(d dec) string {
	neg := d.unscaled < 0
	u := d.unscaled
	if neg {
		u = -u
	}
	s := strconv.FormatInt(u, 10)
	for len(s) <= d.scale {
		s = "0" + s
	}
	s = s[:len(s)-d.scale] + "." + s[len(s)-d.scale:]
	if neg {
		s = "-" + s
	}
	return s
}

func (x row) canon() string {
	var b strings.Builder
	for i, c := range x {
		if i > 0 {
			b.WriteByte('|')
		}
		b.WriteString(c.k)
		b.WriteByte('=')
		b.WriteString(canonValue(c.v))
	}
	return b.String()
}

// parseRows parses JSON lines keeping the key order.
func parseRows(t *testing.T, lines []string) []row {
	t.Helper()
	out := make([]row, 0, len(lines))
	for _, l := range lines {
		d := json.NewDecoder(strings.NewReader(l))
		d.UseNumber()
		if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
			t.Fatalf("bad row %q", l)
		}
		var x row
		for d.More() {
			k, err := d.Token()
			if err != nil {
				t.Fatalf("bad row %q: %v", l, err)
			}
			var v any
			if err := d.Decode(&v); err != nil {
				t.Fatalf("bad row %q: %v", l, err)
			}
			x = append(x, kv{k.(string), v})
		}
		out = append(out, x)
	}
	return out
}

// sameRows compares two multisets of rows and reports the differences.
func sameRows(t *testing.T, what string, got, want []row) {
	t.Helper()
	g, w := make([]string, len(got)), make([]string, len(want))
	for i, x := range got {
		g[i] = x.canon()
	}
	for i, x := range want {
		w[i] = x.canon()
	}
	slices.Sort(g)
	slices.Sort(w)
	if slices.Equal(g, w) {
		return
	}
	extra, missing := diff(g, w), diff(w, g)
	t.Errorf("%s: %d rows, want %d; %d unexpected, %d missing", what, len(got), len(want), len(extra), len(missing))
	for i := range min(len(extra), 5) {
		t.Errorf("  unexpected: %s", extra[i])
	}
	for i := range min(len(missing), 5) {
		t.Errorf("  missing:    %s", missing[i])
	}
}

// diff returns the elements of a (sorted) not matched in b (sorted).
func diff(a, b []string) []string {
	var out []string
	j := 0
	for _, x := range a {
		for j < len(b) && b[j] < x {
			j++
		}
		if j < len(b) && b[j] == x {
			j++
			continue
		}
		out = append(out, x)
	}
	return out
}

// ---- running a query through the engine ----

type runOpts struct {
	events    int64
	eventRate int64
	batchSize int
}

// queryFile reads queries/NAME.sql.
func queryFile(t testing.TB, name string) string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("queries", name+".sql"))
	if err != nil {
		t.Fatal(err)
	}
	return string(src)
}

// runQuery compiles queries/NAME.sql, points its nexmark sources at o's
// events, event rate and batch size, runs it to the end of input with a
// checked allocator (every byte returned at the end) and returns the rows
// of its bare SELECT, as JSON lines, and the folder relative paths resolve
// against (for file sinks).
func runQuery(t *testing.T, name string, o runOpts) ([]string, string) {
	t.Helper()
	p, err := plan.Compile(queryFile(t, name), arrowexec.DefaultSettings(), nil)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	for _, rel := range p.Relations {
		if rel.Options["connector"] != "nexmark" {
			continue
		}
		rel.Options["events"] = strconv.FormatInt(o.events, 10)
		rel.Options["event_rate"] = strconv.FormatInt(o.eventRate, 10)
		if o.batchSize > 0 {
			rel.Options["batch_size"] = strconv.Itoa(o.batchSize)
		}
	}
	out := sinks.NewMemory()
	conns := &arrowexec.Connectors{}
	nexmark.Register(conns)
	sinks.Register(conns)
	conns.RegisterSink("stdout", out.Factory())
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	dir := t.TempDir()
	topo, err := p.Build(plan.BuildEnv{Connectors: conns, Resources: resource.NewManager(mem, 0), BaseDir: dir})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := topo.Run(ctx); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	mem.AssertSize(t, 0)
	return out.Rows(), dir
}

// readCSV returns the lines of a CSV file written by the file sink.
func readCSV(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))), "\n"), "\n")
}
