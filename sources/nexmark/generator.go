package nexmark

import (
	"math"
	"math/bits"
	"slices"
	"strconv"
	"time"
)

// Kind is the kind of a Nexmark event.
type Kind uint8

const (
	KindPerson Kind = iota
	KindAuction
	KindBid
)

func (k Kind) String() string { return [...]string{"person", "auction", "bid"}[k] }

// The standard constants of the Nexmark generator.
const (
	personProportion  = 1
	auctionProportion = 3
	bidProportion     = 46
	totalProportion   = personProportion + auctionProportion + bidProportion

	firstPersonID   = 1000
	firstAuctionID  = 1000
	firstCategoryID = 10
	numCategories   = 5

	personIDLead  = 10
	auctionIDLead = 10

	numActivePeople     = 1000
	numInFlightAuctions = 100

	hotAuctionRatio = 2 // P(bid on a hot auction) = 1 - 1/2
	hotSellersRatio = 4 // P(auction by a hot seller) = 1 - 1/4
	hotBiddersRatio = 4 // P(bid by a hot bidder) = 1 - 1/4
	hotBlock        = 100
	hotChannelRatio = 2 // P(bid from a hot channel) = 1 - 1/2
	numChannels     = 10_000

	avgPersonBytes  = 200
	avgAuctionBytes = 500
	avgBidBytes     = 100
)

// DefaultBaseTime is the event time of event 0 (Beam's Nexmark base time,
// 2015-07-15T00:00:00Z), in milliseconds since the epoch.
var DefaultBaseTime = time.Date(2015, 7, 15, 0, 0, 0, 0, time.UTC).UnixMilli()

// Config parameterises the generator. The zero value is not valid; start
// from DefaultConfig.
type Config struct {
	Seed uint64
	// EventRate is the first_event_rate: events per second of event time
	// (the inter-event delay is 1/EventRate s). Default 10,000.
	EventRate int64
	// BaseTime is the event time of event 0, ms since the epoch.
	BaseTime int64
	// OutOfOrderGroupSize permutes ids (and so event times) within groups
	// of this many event numbers; 1 keeps events in order.
	OutOfOrderGroupSize int64
}

// DefaultConfig is the standard configuration with seed 42.
func DefaultConfig() Config {
	return Config{Seed: 42, EventRate: 10_000, BaseTime: DefaultBaseTime, OutOfOrderGroupSize: 1}
}

var (
	hotChannels     = [4]string{"Google", "Facebook", "Baidu", "Apple"}
	hotChannelBytes = func() (out [4][]byte) {
		for i, c := range hotChannels {
			out[i] = []byte(c)
		}
		return out
	}()
	usStates   = [...]string{"AZ", "CA", "ID", "OR", "WA", "WY"}
	usCities   = [...]string{"Phoenix", "Los Angeles", "San Francisco", "Boise", "Portland", "Bend", "Redmond", "Seattle", "Kent", "Cheyenne"}
	firstNames = [...]string{"Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter"}
	lastNames  = [...]string{"Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris"}
	// fullNames[i*len(lastNames)+j] = firstNames[i] + " " + lastNames[j]
	fullNames = func() []string {
		out := make([]string, 0, len(firstNames)*len(lastNames))
		for _, f := range firstNames {
			for _, l := range lastNames {
				out = append(out, f+" "+l)
			}
		}
		return out
	}()
)

// poolSize is the length of the letter pool extra values are cut from.
const poolSize = 1 << 16

// maxExtra bounds the length of an extra value (an auction's is below
// 1.2 * 500).
const maxExtra = 640

// Generator produces Nexmark events by number. Its methods are pure
// functions of the Config and the event number; the byte slices in the
// events it fills point into generator-owned memory that the next call of
// the same method may overwrite. It is not safe for concurrent use.
//
// Bid, Auction and Person make one event at a time; the source makes a
// batch at a time with genBids, genAuctions and genPersons (batch.go),
// which make the same events (the golden tests hold both to sums
// recorded before the batch functions existed).
type Generator struct {
	cfg     Config
	pool    []byte // random letters extra values are cut from
	hotURLs [4][]byte
	chanBuf []byte // a bid's channel name and URL
	scratch []byte

	// the channels' names and URLs for batch generation (batch.go):
	// the hot ones, then ordinary channels as they are first used
	chans     []chanEntry
	chanArena []byte
	urlBuf    []byte
}

// NewGenerator returns a generator for cfg. EventRate <= 0 and
// OutOfOrderGroupSize <= 0 are replaced by the defaults.
func NewGenerator(cfg Config) *Generator {
	if cfg.EventRate <= 0 {
		cfg.EventRate = 10_000
	}
	if cfg.OutOfOrderGroupSize <= 0 {
		cfg.OutOfOrderGroupSize = 1
	}
	g := &Generator{cfg: cfg, scratch: make([]byte, 0, 256), chanBuf: make([]byte, 16, 128)}
	r := newRNG(cfg.Seed, -1)
	g.pool = make([]byte, poolSize+maxExtra)
	for i := range g.pool {
		g.pool[i] = byte('a' + r.intn(26))
	}
	for i := range g.hotURLs {
		r := newRNG(cfg.Seed^0x5bd1e995, -int64(i)-2)
		g.hotURLs[i] = baseURL(nil, &r)
	}
	return g
}

// Config returns the generator's configuration (defaults filled in).
func (g *Generator) Config() Config { return g.cfg }

// EventID is the id of event number n (n itself without out-of-order
// groups).
func (g *Generator) EventID(n int64) int64 {
	k := g.cfg.OutOfOrderGroupSize
	if k == 1 {
		return n
	}
	return (n/k)*k + (n*953)%k
}

// KindOf is the kind of the event with id id.
func KindOf(id int64) Kind {
	switch rem := id % totalProportion; {
	case rem < personProportion:
		return KindPerson
	case rem < personProportion+auctionProportion:
		return KindAuction
	}
	return KindBid
}

// timeOf is the event time of the event with id id (adjusted number).
func (g *Generator) timeOf(id int64) int64 {
	return g.cfg.BaseTime + id*1000/g.cfg.EventRate
}

// Time is the event time of event number n, ms since the epoch.
func (g *Generator) Time(n int64) int64 { return g.timeOf(g.EventID(n)) }

// lastPerson is the base-0 id of the last person created at event id id
// (the current one for a person event).
func lastPerson(id int64) int64 {
	epoch, off := id/totalProportion, id%totalProportion
	if off >= personProportion {
		off = personProportion - 1
	}
	return epoch*personProportion + off
}

// lastAuction is the base-0 id of the last auction created at event id id.
func lastAuction(id int64) int64 {
	epoch, off := id/totalProportion, id%totalProportion
	switch {
	case off < personProportion:
		epoch--
		off = auctionProportion - 1
	case off >= personProportion+auctionProportion:
		off = auctionProportion - 1
	default:
		off -= personProportion
	}
	return epoch*auctionProportion + off
}

// randomPerson picks a base-0 person id among the active people, a few
// not yet created included.
func randomPerson(id int64, r *rng) int64 {
	n := lastPerson(id) + 1
	active := min(n, numActivePeople)
	return n - active + r.int63n(active+personIDLead)
}

// randomAuction picks a base-0 auction id among those in flight, a few not
// yet created included.
func randomAuction(id int64, r *rng) int64 {
	hi := lastAuction(id)
	lo := max(hi-numInFlightAuctions, 0)
	return lo + r.int63n(hi-lo+1+auctionIDLead)
}

// price draws a price in cents: round(10^(6u) * 100), u uniform in
// [0, 1). 10^(6u) = e^y with y = 6u ln 10 is computed as e^(y0) * e^d:
// e^(y0) from a table of expStep-spaced values, e^d (d < expStep) by its
// Taylor series to d^4 (relative error below 1e-12), several times faster
// than math.Exp.
func price(r *rng) int64 { return priceOf(r.next()) }

// priceOf is the price of draw v.
func priceOf(v uint64) int64 {
	y := float64(v>>11) / (1 << 53) * (6 * math.Ln10)
	i := int(y * (1 / expStep))
	d := y - float64(i)*expStep
	e := expTable[i] * (1 + d*(1+d*(0.5+d*(1.0/6+d*(1.0/24)))))
	return int64(e*100 + 0.5)
}

const expStep = 6 * math.Ln10 / 1024

// expTable[i] = e^(i * expStep), i = 0..1024.
var expTable = func() (t [1025]float64) {
	for i := range t {
		t[i] = math.Exp(float64(i) * expStep)
	}
	return t
}()

// extraLen draws the length of the extra field for an event whose other
// fields take size bytes, to average avg bytes.
func extraLen(r *rng, size, avg int) int {
	if size > avg {
		return 0
	}
	want := avg - size
	delta := int(math.Round(float64(want) * 0.2))
	if delta == 0 {
		return want
	}
	return want - delta + int(r.intn(uint64(2*delta)))
}

// extra cuts an extra value of length n from the pool.
func (g *Generator) extra(r *rng, n int) []byte {
	off := int(r.intn(poolSize))
	return g.pool[off : off+n]
}

// randomString appends a string of 3..max-1 characters, letters or (1 in
// 13) blank, then trimmed of spaces at both ends.
func randomString(dst []byte, r *rng, maxLen int, blank byte) []byte {
	n := 3 + int(r.intn(uint64(maxLen-3)))
	start := len(dst)
	dst = slices.Grow(dst, n)[:start+n]
	r.s = fillRandom(dst[start:], r.s, uint64(blank))
	if blank != ' ' {
		return dst
	}
	s := dst[start:]
	i, j := 0, len(s)
	for i < j && s[i] == ' ' {
		i++
	}
	for j > i && s[j-1] == ' ' {
		j--
	}
	copy(dst[start:], s[i:j])
	return dst[:start+j-i]
}

// fillRandom fills s with the characters of the draws of the stream at
// state st, returning the state after them. For draw v the character is
// blank if intn(13) of its high half is 0, that is if the high half is
// below blankBelow; else the letter intn(26) of its low half. No branch.
//
//go:noinline // alone, its loop keeps every value in a register
func fillRandom(s []byte, st, blank uint64) uint64 {
	for i := range s {
		st += gamma
		v := mix(st)
		c := 'a' + (v&0xffffffff)*26>>32
		isBlank := -((v>>32 - blankBelow) >> 63) // all ones if blank
		s[i] = byte(c ^ (c^blank)&isBlank)
	}
	return st
}

// blankBelow is the smallest x with x*13 >= 2^32: (x*13)>>32 == 0, for x
// below 2^32, exactly when x < blankBelow.
const blankBelow = (1<<32 + 12) / 13

// baseURL appends https://www.nexmark.com/xxx/xxx/xxx/item.htm?query=1.
func baseURL(dst []byte, r *rng) []byte {
	dst = append(dst, "https://www.nexmark.com/"...)
	for range 3 {
		dst = randomString(dst, r, 5, '_')
		dst = append(dst, '/')
	}
	return append(dst, "item.htm?query=1"...)
}

// appendChannel appends the name of ordinary channel c to dst, and its URL
// (a function of the seed and c alone) to url.
func (g *Generator) appendChannel(dst, url []byte, c int) ([]byte, []byte) {
	dst = append(dst, "channel-"...)
	dst = strconv.AppendInt(dst, int64(c), 10)
	r := newRNG(g.cfg.Seed^0x2545f4914f6cdd1d, int64(c))
	url = baseURL(url, &r)
	if r.intn(10) > 0 {
		v := int32(bits.Reverse32(uint32(c)))
		if v < 0 && v != math.MinInt32 { // Java's Math.abs keeps MIN_VALUE
			v = -v
		}
		url = append(url, "&channel_id="...)
		url = strconv.AppendInt(url, int64(v), 10)
	}
	return dst, url
}

// Person is a new person. Byte slices point into generator memory.
type Person struct {
	ID                int64
	Name              string
	Email, CreditCard []byte
	City, State       string
	DateTime          int64
	Extra             []byte
}

// Auction is a new auction. Byte slices point into generator memory.
type Auction struct {
	ID                  int64
	ItemName, Desc      []byte
	InitialBid, Reserve int64
	DateTime, Expires   int64
	Seller, Category    int64
	Extra               []byte
}

// Bid is a bid. Byte slices point into generator memory.
type Bid struct {
	Auction, Bidder, Price int64
	Channel, URL           []byte
	DateTime               int64
	Extra                  []byte
}

// Person fills p with the person of event id id (KindOf(id) must be
// KindPerson). The slices stay valid until the next Person call.
func (g *Generator) Person(id int64, p *Person) {
	r := newRNG(g.cfg.Seed, id)
	p.ID = lastPerson(id) + firstPersonID
	p.Name = fullNames[int(r.intn(uint64(len(firstNames))))*len(lastNames)+int(r.intn(uint64(len(lastNames))))]
	b := g.scratch[:0]
	b = randomString(b, &r, 7, ' ')
	b = append(b, '@')
	b = randomString(b, &r, 5, ' ')
	b = append(b, ".com"...)
	emailEnd := len(b)
	for i := range 4 {
		if i > 0 {
			b = append(b, ' ')
		}
		v := r.intn(10000)
		b = append(b, byte('0'+v/1000), byte('0'+v/100%10), byte('0'+v/10%10), byte('0'+v%10))
	}
	g.scratch = b
	p.Email, p.CreditCard = b[:emailEnd:emailEnd], b[emailEnd:]
	p.City = usCities[r.intn(uint64(len(usCities)))]
	p.State = usStates[r.intn(uint64(len(usStates)))]
	p.DateTime = g.timeOf(id)
	size := 8 + len(p.Name) + len(p.Email) + len(p.CreditCard) + len(p.City) + len(p.State)
	p.Extra = g.extra(&r, extraLen(&r, size, avgPersonBytes))
}

// Auction fills a with the auction of event id id (KindOf(id) must be
// KindAuction). The slices stay valid until the next Auction call.
func (g *Generator) Auction(id int64, a *Auction) {
	r := newRNG(g.cfg.Seed, id)
	a.ID = lastAuction(id) + firstAuctionID
	if r.intn(hotSellersRatio) > 0 {
		a.Seller = lastPerson(id) / hotBlock * hotBlock
	} else {
		a.Seller = randomPerson(id, &r)
	}
	a.Seller += firstPersonID
	a.Category = firstCategoryID + int64(r.intn(numCategories))
	a.InitialBid = price(&r)
	a.DateTime = g.timeOf(id)
	// about numInFlightAuctions auctions are open at any time: an auction
	// lasts on average the event time until that many more are created
	horizon := g.timeOf(id+numInFlightAuctions*totalProportion/auctionProportion) - a.DateTime
	a.Expires = a.DateTime + 1 + r.int63n(max(horizon*2, 1))
	b := g.scratch[:0]
	b = randomString(b, &r, 20, ' ')
	nameEnd := len(b)
	b = randomString(b, &r, 100, ' ')
	g.scratch = b
	a.ItemName, a.Desc = b[:nameEnd:nameEnd], b[nameEnd:]
	a.Reserve = a.InitialBid + price(&r)
	size := 8 + len(a.ItemName) + len(a.Desc) + 8 + 8 + 8 + 8 + 8
	a.Extra = g.extra(&r, extraLen(&r, size, avgAuctionBytes))
}

// Bid fills b with the bid of event id id (KindOf(id) must be KindBid).
// The slices stay valid until the next Bid call.
func (g *Generator) Bid(id int64, b *Bid) {
	r := newRNG(g.cfg.Seed, id)
	if r.intn(hotAuctionRatio) > 0 {
		b.Auction = lastAuction(id) / hotBlock * hotBlock
	} else {
		b.Auction = randomAuction(id, &r)
	}
	b.Auction += firstAuctionID
	if r.intn(hotBiddersRatio) > 0 {
		b.Bidder = lastPerson(id)/hotBlock*hotBlock + 1
	} else {
		b.Bidder = randomPerson(id, &r)
	}
	b.Bidder += firstPersonID
	b.Price = price(&r)
	if r.intn(hotChannelRatio) > 0 {
		i := r.intn(uint64(len(hotChannels)))
		b.Channel, b.URL = hotChannelBytes[i], g.hotURLs[i]
	} else {
		// the name ("channel-9999" at most) before the URL in one buffer
		b.Channel, b.URL = g.appendChannel(g.chanBuf[:0:16], g.chanBuf[16:16], int(r.intn(numChannels)))
	}
	b.DateTime = g.timeOf(id)
	b.Extra = g.extra(&r, extraLen(&r, 8+8+8+8, avgBidBytes))
}

// rng is a SplitMix64 stream: tiny, fast and good enough for synthetic
// data; one is seeded per event from (seed, id).
type rng struct{ s uint64 }

func newRNG(seed uint64, id int64) rng {
	r := rng{s: seed*0x9e3779b97f4a7c15 ^ uint64(id)*idMul}
	r.next()
	return r
}

// idMul spreads event ids over SplitMix64 states.
const idMul = 0xd1b54a32d192ed03

// gamma is SplitMix64's increment: draw k of a stream whose state is s
// is mix(s + k*gamma), so draws can be computed out of order.
const gamma = 0x9e3779b97f4a7c15

func (r *rng) next() uint64 {
	r.s += gamma
	return mix(r.s)
}

// mix is SplitMix64's output function.
func mix(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// intn returns a value in [0, n) (n > 0), by multiply-high.
func (r *rng) intn(n uint64) uint64 {
	hi, _ := bits.Mul64(r.next(), n)
	return hi
}

func (r *rng) int63n(n int64) int64 { return int64(r.intn(uint64(n))) }
