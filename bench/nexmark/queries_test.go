package nexmark_test

import (
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	sec    = int64(1000)
	minute = 60 * sec
	day    = 24 * 60 * minute
)

func floorTo(t, size int64) int64 {
	q := t / size
	if t%size < 0 {
		q--
	}
	return q * size
}

// queryCase is one Nexmark query with its reference.
type queryCase struct {
	name string
	// eventRate is the event_rate of the run: the default for joins whose
	// bounds are written for it, lower for window queries so that a short
	// run spans several windows.
	eventRate int64
	// events overrides the run's 10,000 events.
	events int64
	// ref computes the expected rows; check, when set, compares instead.
	ref   func(w *world) []row
	check func(t *testing.T, w *world, got []row, dir string)
	// skip names the reason a query is not checked.
	skip string
}

var cases = []queryCase{
	{name: "q0", eventRate: 10_000, ref: refQ0},
	{name: "q1", eventRate: 10_000, ref: refQ1},
	{name: "q2", eventRate: 10_000, ref: refQ2},
	{name: "q3", eventRate: 10_000, ref: refQ3},
	{name: "q4", eventRate: 10_000, ref: refQ4},
	{name: "q5", eventRate: 1_000, events: 30_000, check: checkQ5},
	{name: "q7", eventRate: 200, ref: refQ7},
	{name: "q8", eventRate: 200, ref: refQ8},
	{name: "q9", eventRate: 10_000, ref: refQ9},
	{name: "q10", eventRate: 10_000, check: checkQ10},
	{name: "q11", eventRate: 200, ref: refQ11},
	{name: "q12", eventRate: 10_000, check: checkQ12},
	{name: "q14", eventRate: 10_000, ref: refQ14},
	{name: "q15", eventRate: 10_000, ref: refQ15},
	{name: "q16", eventRate: 10_000, ref: refQ16},
	{name: "q17", eventRate: 10_000, ref: refQ17},
	{name: "q18", eventRate: 10_000, check: checkQ18},
	{name: "q19", eventRate: 10_000, check: checkQ19},
	{name: "q20", eventRate: 10_000, ref: refQ20},
	{name: "q21", eventRate: 10_000, ref: refQ21},
	{name: "q22", eventRate: 10_000, ref: refQ22},
}

// TestQueries runs every query through the engine (plan.Compile, Build,
// Topology.Run) over 10,000 generated events (30,000 for q5) and compares its rows with
// the reference, at two source batch sizes (three without -short).
func TestQueries(t *testing.T) {
	batches := []int{97, 0}
	if !testing.Short() {
		batches = []int{1, 97, 0}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.skip != "" {
				t.Skip(c.skip)
			}
			events := int64(10_000)
			if c.events > 0 {
				events = c.events
			}
			w := generate(events, c.eventRate)
			var want []row
			if c.ref != nil {
				want = c.ref(w)
				if len(want) == 0 {
					t.Fatal("the reference has no rows: the check would prove nothing")
				}
			}
			for _, bs := range batches {
				lines, dir := runQuery(t, c.name, runOpts{events: events, eventRate: c.eventRate, batchSize: bs})
				got := parseRows(t, lines)
				what := fmt.Sprintf("%s (batch_size %d)", c.name, bs)
				if c.check != nil {
					t.Run(fmt.Sprint(bs), func(t *testing.T) { c.check(t, w, got, dir) })
					continue
				}
				sameRows(t, what, got, want)
			}
		})
	}
}

// TestQueryFilesValidate checks every query has its file.
func TestQueryFilesValidate(t *testing.T) {
	files, err := filepath.Glob("queries/q*.sql")
	if err != nil || len(files) < 20 {
		t.Fatalf("query files: %v %v", files, err)
	}
	for _, c := range cases {
		if c.skip == "" && !slices.Contains(files, filepath.Join("queries", c.name+".sql")) {
			t.Errorf("no file for %s", c.name)
		}
	}
}

func bidRow(b bidEv) row {
	return r("auction", b.auction, "bidder", b.bidder, "price", b.price, "date_time", ts(b.dt), "extra", b.extra)
}

func refQ0(w *world) []row {
	var out []row
	for _, b := range w.bids {
		out = append(out, bidRow(b))
	}
	return out
}

func refQ1(w *world) []row {
	var out []row
	for _, b := range w.bids {
		out = append(out, r("auction", b.auction, "bidder", b.bidder, "price", dec{b.price * 908, 3}, "date_time", ts(b.dt), "extra", b.extra))
	}
	return out
}

func refQ2(w *world) []row {
	var out []row
	for _, b := range w.bids {
		if b.auction%123 == 0 {
			out = append(out, r("auction", b.auction, "price", b.price))
		}
	}
	return out
}

// refQ3 is the unbounded inner join: the query's 10 s TTL covers the whole
// run (1 s of event time).
func refQ3(w *world) []row {
	people := map[int64]personEv{}
	for _, p := range w.persons {
		people[p.id] = p
	}
	var out []row
	for _, a := range w.auctions {
		p, ok := people[a.seller]
		if !ok || a.category != 10 || (p.state != "OR" && p.state != "ID" && p.state != "CA") {
			continue
		}
		out = append(out, r("name", p.name, "city", p.city, "state", p.state, "id", a.id))
	}
	return out
}

// candidates returns, per auction (in order), the bids of the q4/q9 join:
// same auction, within [start, start + 1 s] and not after its expiry.
func candidates(w *world) map[int64][]bidEv {
	byAuction := map[int64][]bidEv{}
	for _, b := range w.bids {
		byAuction[b.auction] = append(byAuction[b.auction], b)
	}
	out := map[int64][]bidEv{}
	for _, a := range w.auctions {
		for _, b := range byAuction[a.id] {
			if b.dt >= a.dt && b.dt <= a.dt+sec && b.dt <= a.expires {
				out[a.id] = append(out[a.id], b)
			}
		}
	}
	return out
}

func refQ4(w *world) []row {
	cands := candidates(w)
	sum, n := map[int64]float64{}, map[int64]int{}
	for _, a := range w.auctions {
		bs := cands[a.id]
		if len(bs) == 0 {
			continue
		}
		best := bs[0].price
		for _, b := range bs {
			best = max(best, b.price)
		}
		sum[a.category] += float64(best)
		n[a.category]++
	}
	var out []row
	for c := range sum {
		out = append(out, r("category", c, "avg_final", sum[c]/float64(n[c])))
	}
	return out
}

// refQ5: sliding windows of 10 s every 2 s; per window the auctions with
// the most bids.
func refQ5(w *world) []row {
	const size, slide = 10 * sec, 2 * sec
	counts := map[[2]int64]int64{} // (start, auction) -> bids
	for _, b := range w.bids {
		for s := floorTo(b.dt, slide); s > b.dt-size; s -= slide {
			counts[[2]int64{s, b.auction}]++
		}
	}
	maxn := map[int64]int64{}
	for k, n := range counts {
		maxn[k[0]] = max(maxn[k[0]], n)
	}
	var out []row
	for k, n := range counts {
		if n == maxn[k[0]] {
			out = append(out, r("auction", k[1], "num", n, "starttime", ts(k[0]), "endtime", ts(k[0]+size)))
		}
	}
	return out
}

// checkQ5 compares with refQ5. The join of two streams without event time
// (processing time, state_ttl) must also match the windows that only the
// end of input closes: the window aggregate flushes them in several
// batches, and only the last carries the final watermark.
func checkQ5(t *testing.T, w *world, got []row, _ string) {
	sameRows(t, "q5", got, refQ5(w))
}

func refQ7(w *world) []row {
	top := map[int64]int64{}
	for _, b := range w.bids {
		win := floorTo(b.dt, 10*sec)
		if p, ok := top[win]; !ok || b.price > p {
			top[win] = b.price
		}
	}
	var out []row
	for _, b := range w.bids {
		if b.price == top[floorTo(b.dt, 10*sec)] {
			out = append(out, bidRow(b))
		}
	}
	return out
}

func refQ8(w *world) []row {
	sellers := map[[2]int64]bool{}
	for _, a := range w.auctions {
		sellers[[2]int64{a.seller, floorTo(a.dt, 10*sec)}] = true
	}
	var out []row
	for _, p := range w.persons {
		win := floorTo(p.dt, 10*sec)
		if sellers[[2]int64{p.id, win}] {
			out = append(out, r("id", p.id, "name", p.name, "starttime", ts(win)))
		}
	}
	return out
}

func refQ9(w *world) []row {
	cands := candidates(w)
	var out []row
	for _, a := range w.auctions {
		bs := cands[a.id]
		if len(bs) == 0 {
			continue
		}
		best := bs[0]
		for _, b := range bs[1:] {
			if b.price > best.price || (b.price == best.price && b.dt < best.dt) {
				best = b
			}
		}
		for _, b := range bs {
			if b != best && b.price == best.price && b.dt == best.dt {
				panic(fmt.Sprintf("q9: auction %d has two equal best bids; the check would depend on arrival order", a.id))
			}
		}
		out = append(out, r("id", a.id, "item_name", a.itemName, "description", a.desc, "initial_bid", a.initialBid,
			"reserve", a.reserve, "date_time", ts(a.dt), "expires", ts(a.expires), "seller", a.seller,
			"category", a.category, "extra", a.extra, "auction", best.auction, "bidder", best.bidder,
			"price", best.price, "bid_date_time", ts(best.dt), "bid_extra", best.extra))
	}
	return out
}

func checkQ10(t *testing.T, w *world, got []row, dir string) {
	if len(got) != 0 {
		t.Errorf("q10 printed %d rows; it writes a file", len(got))
	}
	lines := readCSV(t, filepath.Join(dir, "out", "q10.csv"))
	want := []string{"auction,bidder,price,date_time,extra,dt,hm"}
	for _, b := range w.bids {
		t := time.UnixMilli(b.dt).UTC()
		want = append(want, fmt.Sprintf("%d,%d,%d,%s,%s,%s,%s", b.auction, b.bidder, b.price,
			t.Format("2006-01-02T15:04:05.000Z"), b.extra, t.Format("2006-01-02"), t.Format("15:04")))
	}
	if !slices.Equal(lines, want) {
		t.Errorf("q10 file: %d lines, want %d", len(lines), len(want))
		for i := range min(len(lines), len(want)) {
			if lines[i] != want[i] {
				t.Errorf("line %d: %q, want %q", i+1, lines[i], want[i])
				break
			}
		}
	}
}

// refQ11: per bidder, bids less than 10 s apart share a session, which
// ends 10 s after its last bid.
func refQ11(w *world) []row {
	const gap = 10 * sec
	times := map[int64][]int64{}
	for _, b := range w.bids {
		times[b.bidder] = append(times[b.bidder], b.dt)
	}
	var out []row
	for bidder, ts0 := range times {
		slices.Sort(ts0)
		start, last, n := ts0[0], ts0[0], int64(1)
		for _, x := range ts0[1:] {
			if x < last+gap {
				last, n = x, n+1
				continue
			}
			out = append(out, r("bidder", bidder, "bid_count", n, "starttime", ts(start), "endtime", ts(last+gap)))
			start, last, n = x, x, 1
		}
		out = append(out, r("bidder", bidder, "bid_count", n, "starttime", ts(start), "endtime", ts(last+gap)))
	}
	return out
}

// checkQ12: processing-time windows depend on the wall clock, so the check
// is that every bid is counted once, in 10 s windows.
func checkQ12(t *testing.T, w *world, got []row, _ string) {
	want := map[string]int64{}
	for _, b := range w.bids {
		want[strconv.FormatInt(b.bidder, 10)]++
	}
	sums := map[string]int64{}
	for _, x := range got {
		n, _ := strconv.ParseInt(canonValue(x.get("bid_count")), 10, 64)
		sums[canonValue(x.get("bidder"))] += n
		s, _ := time.Parse(time.RFC3339, x.get("starttime").(string))
		e, _ := time.Parse(time.RFC3339, x.get("endtime").(string))
		if e.Sub(s) != 10*time.Second || s.UnixMilli()%(10*sec) != 0 {
			t.Errorf("q12 window %v .. %v", s, e)
		}
	}
	if len(sums) != len(want) {
		t.Errorf("q12: %d bidders, want %d", len(sums), len(want))
	}
	for k, n := range want {
		if sums[k] != n {
			t.Errorf("q12: bidder %s counted %d times, want %d", k, sums[k], n)
		}
	}
}

func refQ14(w *world) []row {
	var out []row
	for _, b := range w.bids {
		// 0.908 * price, exact: price * 908 / 1000
		if p := b.price * 908; p <= 1_000_000_000 || p >= 50_000_000_000 {
			continue
		}
		h := time.UnixMilli(b.dt).UTC().Hour()
		kind := "otherTime"
		switch {
		case h >= 8 && h <= 18:
			kind = "dayTime"
		case h <= 6 || h >= 20:
			kind = "nightTime"
		}
		out = append(out, r("auction", b.auction, "bidder", b.bidder, "price", dec{b.price * 908, 3},
			"bid_time_type", kind, "date_time", ts(b.dt), "extra", b.extra, "c_counts", int64(strings.Count(b.extra, "c"))))
	}
	return out
}

// rankStats are the counts of q15 and q16 for one group.
type rankStats struct {
	bids              [4]int64 // total, rank 1..3
	bidders, auctions [4]map[int64]bool
	lastMinute        int64
	minP, maxP, sumP  int64
}

func rankOf(price int64) int {
	switch {
	case price < 10_000:
		return 1
	case price < 1_000_000:
		return 2
	}
	return 3
}

func (s *rankStats) add(b bidEv) {
	if s.bidders[0] == nil {
		for i := range 4 {
			s.bidders[i], s.auctions[i] = map[int64]bool{}, map[int64]bool{}
		}
		s.minP, s.maxP = math.MaxInt64, math.MinInt64
	}
	for _, i := range []int{0, rankOf(b.price)} {
		s.bids[i]++
		s.bidders[i][b.bidder] = true
		s.auctions[i][b.auction] = true
	}
	s.lastMinute = max(s.lastMinute, floorTo(b.dt, minute))
	s.minP, s.maxP, s.sumP = min(s.minP, b.price), max(s.maxP, b.price), s.sumP+b.price
}

func (s *rankStats) bidCounts() []any {
	return []any{"total_bids", s.bids[0], "rank1_bids", s.bids[1], "rank2_bids", s.bids[2], "rank3_bids", s.bids[3]}
}

func (s *rankStats) distinctCounts() []any {
	var out []any
	for _, what := range []string{"bidders", "auctions"} {
		m := s.bidders
		if what == "auctions" {
			m = s.auctions
		}
		out = append(out, "total_"+what, int64(len(m[0])))
		for i := 1; i <= 3; i++ {
			out = append(out, fmt.Sprintf("rank%d_%s", i, what), int64(len(m[i])))
		}
	}
	return out
}

func refQ15(w *world) []row {
	days := map[int64]*rankStats{}
	for _, b := range w.bids {
		d := floorTo(b.dt, day)
		if days[d] == nil {
			days[d] = &rankStats{}
		}
		days[d].add(b)
	}
	var out []row
	for d, s := range days {
		out = append(out, r(append(append([]any{"day", ts(d)}, s.bidCounts()...), s.distinctCounts()...)...))
	}
	return out
}

func refQ16(w *world) []row {
	type key struct {
		channel string
		day     int64
	}
	groups := map[key]*rankStats{}
	for _, b := range w.bids {
		k := key{b.channel, floorTo(b.dt, day)}
		if groups[k] == nil {
			groups[k] = &rankStats{}
		}
		groups[k].add(b)
	}
	var out []row
	for k, s := range groups {
		kvs := append([]any{"channel", k.channel, "day", ts(k.day), "minute", ts(s.lastMinute)}, s.bidCounts()...)
		out = append(out, r(append(kvs, s.distinctCounts()...)...))
	}
	return out
}

func refQ17(w *world) []row {
	type key struct{ auction, day int64 }
	groups := map[key]*rankStats{}
	for _, b := range w.bids {
		k := key{b.auction, floorTo(b.dt, day)}
		if groups[k] == nil {
			groups[k] = &rankStats{}
		}
		groups[k].add(b)
	}
	var out []row
	for k, s := range groups {
		kvs := append([]any{"auction", k.auction, "day", ts(k.day)}, s.bidCounts()...)
		kvs = append(kvs, "min_price", s.minP, "max_price", s.maxP, "avg_price", float64(s.sumP)/float64(s.bids[0]), "sum_price", s.sumP)
		out = append(out, r(kvs...))
	}
	return out
}

// checkQ18: the output is an updating result (each batch emits the groups
// it changed); the last row of each (bidder, auction) must be its last bid.
func checkQ18(t *testing.T, w *world, got []row, _ string) {
	type key struct{ bidder, auction string }
	last := map[key]row{}
	for _, x := range got {
		last[key{canonValue(x.get("bidder")), canonValue(x.get("auction"))}] = x
	}
	wantLast := map[key]bidEv{}
	for _, b := range w.bids {
		wantLast[key{strconv.FormatInt(b.bidder, 10), strconv.FormatInt(b.auction, 10)}] = b
	}
	var gotRows, wantRows []row
	for _, x := range last {
		gotRows = append(gotRows, x)
	}
	for _, b := range wantLast {
		wantRows = append(wantRows, r("auction", b.auction, "bidder", b.bidder, "price", b.price, "channel", b.channel,
			"url", b.url, "date_time", ts(b.dt), "extra", b.extra))
	}
	sameRows(t, "q18 (last row per key)", gotRows, wantRows)
}

func refQ20(w *world) []row {
	auctions := map[int64]auctionEv{}
	for _, a := range w.auctions {
		auctions[a.id] = a
	}
	var out []row
	for _, b := range w.bids {
		a, ok := auctions[b.auction]
		if !ok || a.category != 10 {
			continue
		}
		out = append(out, r("auction", b.auction, "bidder", b.bidder, "price", b.price, "channel", b.channel, "url", b.url,
			"bid_date_time", ts(b.dt), "bid_extra", b.extra, "item_name", a.itemName, "description", a.desc,
			"initial_bid", a.initialBid, "reserve", a.reserve, "auction_date_time", ts(a.dt), "expires", ts(a.expires),
			"seller", a.seller, "category", a.category, "auction_extra", a.extra))
	}
	return out
}

// channelID is the value of the channel_id query parameter: after
// "channel_id=" at the start or after '&', up to the next '&'.
func channelID(url string) (string, bool) {
	for _, prefix := range []string{"&channel_id="} {
		if i := strings.Index(url, prefix); i >= 0 {
			v := url[i+len(prefix):]
			if j := strings.IndexByte(v, '&'); j >= 0 {
				v = v[:j]
			}
			return v, true
		}
	}
	if v, ok := strings.CutPrefix(url, "channel_id="); ok {
		if j := strings.IndexByte(v, '&'); j >= 0 {
			v = v[:j]
		}
		return v, true
	}
	return "", false
}

func refQ21(w *world) []row {
	hot := map[string]string{"apple": "0", "google": "1", "facebook": "2", "baidu": "3"}
	var out []row
	for _, b := range w.bids {
		id, ok := channelID(b.url)
		h, isHot := hot[strings.ToLower(b.channel)]
		if !ok && !isHot {
			continue
		}
		var v any = id
		if isHot {
			v = h
		}
		out = append(out, r("auction", b.auction, "bidder", b.bidder, "price", b.price, "channel", b.channel, "channel_id", v))
	}
	return out
}

func refQ22(w *world) []row {
	var out []row
	for _, b := range w.bids {
		parts := strings.Split(b.url, "/")
		dir := func(i int) string {
			if i < len(parts) {
				return parts[i]
			}
			return ""
		}
		out = append(out, r("auction", b.auction, "bidder", b.bidder, "price", b.price, "channel", b.channel,
			"dir1", dir(3), "dir2", dir(4), "dir3", dir(5)))
	}
	return out
}
