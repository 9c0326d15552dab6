package nexmark_test

import (
	"cmp"
	"slices"
	"testing"
)

// checkQ19: over a bounded run the ranking is computed when the input
// ends. Equal prices may take their ranks in either order, so the check
// compares (auction, rank, price): the i-th highest price of each auction
// is determined even when its bidder is not.
func checkQ19(t *testing.T, w *world, got []row, _ string) {
	byAuction := map[int64][]int64{}
	for _, b := range w.bids {
		byAuction[b.auction] = append(byAuction[b.auction], b.price)
	}
	var want []row
	for auction, prices := range byAuction {
		slices.SortFunc(prices, func(a, b int64) int { return cmp.Compare(b, a) })
		for i, p := range prices[:min(10, len(prices))] {
			want = append(want, r("auction", auction, "rank_number", int64(i+1), "price", p))
		}
	}
	var gotRows []row
	for _, x := range got {
		gotRows = append(gotRows, r("auction", x.get("auction"), "rank_number", x.get("rank_number"), "price", x.get("price")))
	}
	if len(want) == 0 {
		t.Fatal("the reference has no rows")
	}
	sameRows(t, "q19 (top 10 per auction)", gotRows, want)
}
