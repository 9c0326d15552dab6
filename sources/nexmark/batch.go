package nexmark

import "math"

// Batch generation: the source generates a batch's events column by
// column rather than event by event. One tight loop per kind walks the
// batch's event ids, seeds each event's random stream and makes its draws
// in exactly the order of Generator.Bid, Auction and Person (so the events
// are the same), storing the values in per-column scratch arrays; strings
// are stored as (start, length) references into bytes that already exist
// (the extra pool, a table of channel names and URLs, static name tables)
// or into per-batch arenas for letters drawn one by one. The source then
// builds each Arrow column in a loop of its own, sizing string data
// exactly.

// strCol is a string column of a generated batch: row i is
// src[start[i] : start[i]+n[i]]. When src has room past the values (see
// padded), short values are copied in fixed 16-byte chunks (stringArray).
type strCol struct {
	src      []byte
	start, n []int32
}

// srcPad is the room padded makes: values up to srcPad bytes long are
// copied in chunks.
const srcPad = 128

// The extra pool has room for maxExtra >= srcPad bytes past every start.
const _ = uint(maxExtra - srcPad)

// padded returns b extended by srcPad bytes, within its capacity (which
// it grows when short); the extra bytes are not zeroed.
func padded(b []byte) []byte {
	if cap(b)-len(b) < srcPad {
		nb := make([]byte, len(b), 2*len(b)+srcPad)
		copy(nb, b)
		b = nb
	}
	return b[:len(b)+srcPad]
}

// reset makes room for rows rows.
func (c *strCol) reset(rows int) {
	c.src = nil
	c.start = grow(c.start, rows)
	c.n = grow(c.n, rows)
}

// extent returns the total length of the column's values, the longest's
// and the largest start, and whether no start or length is negative.
func (c *strCol) extent() (total, longest, lastStart int, ok bool) {
	var m, ms, low int32
	n := c.n[:len(c.start)]
	for i, st := range c.start {
		total += int(n[i])
		m, ms = max(m, n[i]), max(ms, st)
		low = min(low, n[i], st)
	}
	return total, int(m), int(ms), low >= 0
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// genBatch holds the scratch columns of one batch of events of one kind,
// indexed by column; the columns of the other kinds are left unused. It is
// reused from batch to batch; its arrays and arenas belong to the source
// and are copied into the Arrow buffers it hands out.
type genBatch struct {
	ints    [cPerExtra + 1][]int64
	strs    [cPerExtra + 1]strCol
	arenas  [2][]byte // letters drawn for two string columns of the kind
	maxTime int64
}

func (b *genBatch) intCol(c column, rows int) []int64 {
	b.ints[c] = grow(b.ints[c], rows)
	return b.ints[c]
}

func (b *genBatch) strCol(c column, rows int) *strCol {
	b.strs[c].reset(rows)
	return &b.strs[c]
}

// The extra length of a bid is always drawn with the same bounds (its
// other fields have a fixed size): bidExtraMin + intn(bidExtraSpan).
var bidExtraMin, bidExtraSpan = func() (int, uint64) {
	want := avgBidBytes - (8 + 8 + 8 + 8)
	delta := int(math.Round(float64(want) * 0.2))
	return want - delta, uint64(2 * delta)
}()

// chanEntry locates a hot or ordinary channel's name and URL in the
// generator's channel arena: the name at start, the URL right after it.
// urlLen is 0 until the channel is first used.
type chanEntry struct {
	start           int32
	nameLen, urlLen uint8
}

// addChannel fills the entry of ordinary channel c, at len(hotChannels)+c
// in g.chans.
func (g *Generator) addChannel(c int) {
	start := len(g.chanArena)
	name, url := g.appendChannel(g.chanArena, g.urlBuf[:0], c)
	g.urlBuf = url[:0]
	g.chanArena = append(name, url...)
	g.chans[len(hotChannels)+c] = chanEntry{start: int32(start), nameLen: uint8(len(name) - start), urlLen: uint8(len(url))}
}

// initChannels sets up the channel table with the hot channels. Filled
// in, the table and its arena take about 1 MB (10,000 names and URLs),
// held by the generator for its life.
func (g *Generator) initChannels() {
	g.chans = make([]chanEntry, len(hotChannels)+numChannels)
	for i, name := range hotChannels {
		g.chans[i] = chanEntry{start: int32(len(g.chanArena)), nameLen: uint8(len(name)), urlLen: uint8(len(g.hotURLs[i]))}
		g.chanArena = append(append(g.chanArena, name...), g.hotURLs[i]...)
	}
}

// genBids fills b with the bids of event ids ids (each of KindBid), the
// same events as Bid, with the same draws: intn of a power of two is
// written as the shift it equals, and the last person and auction of a
// bid are the epoch's.
func (g *Generator) genBids(ids []int64, b *genBatch) {
	n := len(ids)
	auc, bidder, prices, dt := b.intCol(cBidAuction, n), b.intCol(cBidBidder, n), b.intCol(cBidPrice, n), b.intCol(cBidDateTime, n)
	ch, url, ex := b.strCol(cBidChannel, n), b.strCol(cBidURL, n), b.strCol(cBidExtra, n)
	if g.chans == nil {
		g.initChannels()
	}
	seedMix := newRNG(g.cfg.Seed, 0).s - gamma // newRNG(seed, id).s is (seedMix ^ id*idMul) + gamma
	maxTime := b.maxTime
	auc, bidder, prices, dt = auc[:n], bidder[:n], prices[:n], dt[:n]
	chStart, chN, urlStart, urlN := ch.start[:n], ch.n[:n], url.start[:n], url.n[:n]
	exStart, exN := ex.start[:n], ex.n[:n]
	chans := g.chans[:len(hotChannels)+numChannels]
	for i, id := range ids {
		r := rng{s: (seedMix ^ uint64(id)*idMul) + gamma}
		epoch := id / totalProportion
		la := epoch*auctionProportion + auctionProportion - 1 // lastAuction(id)
		lp := epoch*personProportion + personProportion - 1   // lastPerson(id)
		var a int64
		if r.next()>>63 != 0 { // intn(hotAuctionRatio) > 0
			a = la / hotBlock * hotBlock
		} else { // randomAuction
			lo := max(la-numInFlightAuctions, 0)
			a = lo + r.int63n(la-lo+1+auctionIDLead)
		}
		auc[i] = a + firstAuctionID
		var p int64
		if r.next()>>62 != 0 { // intn(hotBiddersRatio) > 0
			p = lp/hotBlock*hotBlock + 1
		} else { // randomPerson
			np := lp + 1
			active := min(np, numActivePeople)
			p = np - active + r.int63n(active+personIDLead)
		}
		bidder[i] = p + firstPersonID
		prices[i] = int64(r.next()) // the price's draw, see below
		var c int
		if r.next()>>63 != 0 { // intn(hotChannelRatio) > 0
			c = int(r.next() >> 62) // intn(len(hotChannels))
		} else {
			c = len(hotChannels) + int(r.intn(numChannels))
		}
		e := chans[c]
		if e.urlLen == 0 {
			g.addChannel(c - len(hotChannels))
			e = chans[c]
		}
		chStart[i], chN[i], urlStart[i], urlN[i] = e.start, int32(e.nameLen), e.start+int32(e.nameLen), int32(e.urlLen)
		t := g.timeOf(id)
		dt[i] = t
		maxTime = max(maxTime, t)
		exN[i] = int32(bidExtraMin + int(r.intn(bidExtraSpan)))
		exStart[i] = int32(r.next() >> 48) // intn(poolSize)
	}
	// The price's float arithmetic is a long chain of latencies: in a
	// loop of its own, rows overlap.
	for i, v := range prices {
		prices[i] = priceOf(uint64(v))
	}
	arena := padded(g.chanArena)
	g.chanArena = arena[:len(g.chanArena)]
	ch.src, url.src, ex.src = arena, arena, g.pool
	b.maxTime = maxTime
}

// The shifts of genBids stand for intn of these powers of two.
const (
	_ = uint(hotAuctionRatio - 2)
	_ = uint(2 - hotAuctionRatio)
	_ = uint(hotBiddersRatio - 4)
	_ = uint(4 - hotBiddersRatio)
	_ = uint(hotChannelRatio - 2)
	_ = uint(2 - hotChannelRatio)
	_ = uint(len(hotChannels) - 4)
	_ = uint(4 - len(hotChannels))
	_ = uint(poolSize - 1<<16)
	_ = uint(1<<16 - poolSize)
)

// genAuctions fills b with the auctions of event ids ids (each of
// KindAuction), the same events as Auction.
func (g *Generator) genAuctions(ids []int64, b *genBatch) {
	n := len(ids)
	idc, initial, reserve := b.intCol(cAucID, n), b.intCol(cAucInitialBid, n), b.intCol(cAucReserve, n)
	dt, expires, seller, category := b.intCol(cAucDateTime, n), b.intCol(cAucExpires, n), b.intCol(cAucSeller, n), b.intCol(cAucCategory, n)
	name, desc, ex := b.strCol(cAucItemName, n), b.strCol(cAucDescription, n), b.strCol(cAucExtra, n)
	names, descs := b.arenas[0][:0], b.arenas[1][:0]
	seed := g.cfg.Seed
	maxTime := b.maxTime
	for i, id := range ids {
		r := newRNG(seed, id)
		idc[i] = lastAuction(id) + firstAuctionID
		var s int64
		if r.intn(hotSellersRatio) > 0 {
			s = lastPerson(id) / hotBlock * hotBlock
		} else {
			s = randomPerson(id, &r)
		}
		seller[i] = s + firstPersonID
		category[i] = firstCategoryID + int64(r.intn(numCategories))
		ib := price(&r)
		initial[i] = ib
		t := g.timeOf(id)
		dt[i] = t
		maxTime = max(maxTime, t)
		horizon := g.timeOf(id+numInFlightAuctions*totalProportion/auctionProportion) - t
		expires[i] = t + 1 + r.int63n(max(horizon*2, 1))
		start := len(names)
		names = randomString(names, &r, 20, ' ')
		name.start[i], name.n[i] = int32(start), int32(len(names)-start)
		start = len(descs)
		descs = randomString(descs, &r, 100, ' ')
		desc.start[i], desc.n[i] = int32(start), int32(len(descs)-start)
		reserve[i] = ib + price(&r)
		size := 8 + int(name.n[i]) + int(desc.n[i]) + 8 + 8 + 8 + 8 + 8
		l := extraLen(&r, size, avgAuctionBytes)
		ex.start[i], ex.n[i] = int32(r.intn(poolSize)), int32(l)
	}
	names, descs = padded(names), padded(descs)
	b.arenas[0], b.arenas[1] = names, descs
	name.src, desc.src, ex.src = names, descs, g.pool
	b.maxTime = maxTime
}

// Static tables of the person columns, as bytes: fullNameTab holds
// fullNames, cityTab usCities and stateTab usStates.
var fullNameTab, cityTab, stateTab = table(fullNames), table(usCities[:]), table(usStates[:])

// strTable is a list of strings in one byte slice (padded).
type strTable struct {
	src      []byte
	start, n []int32
}

func table(vals []string) strTable {
	var t strTable
	for _, v := range vals {
		t.start = append(t.start, int32(len(t.src)))
		t.n = append(t.n, int32(len(v)))
		t.src = append(t.src, v...)
	}
	t.src = padded(t.src)
	return t
}

// genPersons fills b with the persons of event ids ids (each of
// KindPerson), the same events as Person.
func (g *Generator) genPersons(ids []int64, b *genBatch) {
	n := len(ids)
	idc, dt := b.intCol(cPerID, n), b.intCol(cPerDateTime, n)
	name, email, card := b.strCol(cPerName, n), b.strCol(cPerEmail, n), b.strCol(cPerCreditCard, n)
	city, state, ex := b.strCol(cPerCity, n), b.strCol(cPerState, n), b.strCol(cPerExtra, n)
	emails, cards := b.arenas[0][:0], b.arenas[1][:0]
	seed := g.cfg.Seed
	maxTime := b.maxTime
	for i, id := range ids {
		r := newRNG(seed, id)
		idc[i] = lastPerson(id) + firstPersonID
		k := int(r.intn(uint64(len(firstNames))))*len(lastNames) + int(r.intn(uint64(len(lastNames))))
		name.start[i], name.n[i] = fullNameTab.start[k], fullNameTab.n[k]
		start := len(emails)
		emails = randomString(emails, &r, 7, ' ')
		emails = append(emails, '@')
		emails = randomString(emails, &r, 5, ' ')
		emails = append(emails, ".com"...)
		email.start[i], email.n[i] = int32(start), int32(len(emails)-start)
		start = len(cards)
		for j := range 4 {
			if j > 0 {
				cards = append(cards, ' ')
			}
			v := r.intn(10000)
			cards = append(cards, byte('0'+v/1000), byte('0'+v/100%10), byte('0'+v/10%10), byte('0'+v%10))
		}
		card.start[i], card.n[i] = int32(start), int32(len(cards)-start)
		k = int(r.intn(uint64(len(usCities))))
		city.start[i], city.n[i] = cityTab.start[k], cityTab.n[k]
		k = int(r.intn(uint64(len(usStates))))
		state.start[i], state.n[i] = stateTab.start[k], stateTab.n[k]
		t := g.timeOf(id)
		dt[i] = t
		maxTime = max(maxTime, t)
		size := 8 + int(name.n[i]+email.n[i]+card.n[i]+city.n[i]+state.n[i])
		l := extraLen(&r, size, avgPersonBytes)
		ex.start[i], ex.n[i] = int32(r.intn(poolSize)), int32(l)
	}
	emails, cards = padded(emails), padded(cards)
	b.arenas[0], b.arenas[1] = emails, cards
	name.src, email.src, card.src = fullNameTab.src, emails, cards
	city.src, state.src, ex.src = cityTab.src, stateTab.src, g.pool
	b.maxTime = maxTime
}
