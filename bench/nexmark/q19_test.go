package nexmark_test

import (
	"cmp"
	"slices"
	"strconv"
	"testing"
)

// checkQ19: the output is an updating top 10 (upserts keyed by auction and
// rank_number, see q19.sql): applied in order, the rows must leave, for
// every auction, its ten highest bids, an earlier bid ranking before a
// later one at an equal price, every column as generated.
func checkQ19(t *testing.T, w *world, got []row, _ string) {
	type key struct{ auction, rank string }
	state := map[key]row{}
	for _, x := range got {
		rank := canonValue(x.get("rank_number"))
		if n, err := strconv.Atoi(rank); err != nil || n < 1 || n > 10 {
			t.Fatalf("q19 emitted rank_number %s", rank)
		}
		state[key{canonValue(x.get("auction")), rank}] = x
	}
	byAuction := map[int64][]bidEv{}
	for _, b := range w.bids {
		byAuction[b.auction] = append(byAuction[b.auction], b)
	}
	var want []row
	for _, bids := range byAuction {
		slices.SortStableFunc(bids, func(a, b bidEv) int { return cmp.Compare(b.price, a.price) })
		for i, b := range bids[:min(10, len(bids))] {
			want = append(want, r("auction", b.auction, "bidder", b.bidder, "price", b.price, "channel", b.channel,
				"url", b.url, "date_time", ts(b.dt), "extra", b.extra, "rank_number", int64(i+1)))
		}
	}
	if len(want) == 0 {
		t.Fatal("the reference has no rows")
	}
	var gotRows []row
	for _, x := range state {
		gotRows = append(gotRows, x)
	}
	sameRows(t, "q19 (top 10 per auction, upserts applied)", gotRows, want)
}
