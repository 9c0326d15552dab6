// Package nexmark is the Nexmark benchmark's event generator and the
// `connector = 'nexmark'` source that streams its events as Arrow batches.
//
// Benchmark code lives under bench/ (docs/design.md), but a source
// connector must be importable by cmd/ferris and server, which bench/ (a test-only package) is
// not. So the generator lives here, and the queries, the reference
// implementations and the runner's tests live in bench/nexmark.
//
// # The rules
//
// The generator follows the rules of the standard Nexmark generator (Apache
// Beam's and the Flink nexmark project's GeneratorConfig, PersonGenerator,
// AuctionGenerator and BidGenerator), re-implemented from their description:
//
//   - Events are numbered 0, 1, 2, ...; event number n has id adj(n), equal
//     to n unless out-of-order groups are configured (out_of_order_group_size
//     g > 1: within each group of g numbers, ids are permuted by
//     base + (n*953) mod g). The id decides the kind: id mod 50 is 0 for a
//     person, 1..3 for an auction, 4..49 for a bid (proportions 1:3:46).
//   - The event time of event n is base_time + adj(n) * 1000 / event_rate ms:
//     it advances at event_rate (the first_event_rate, default 10,000 events
//     per second of event time) whatever the emission speed.
//   - Every field of an event is drawn from a random generator seeded by
//     (seed, id) alone, so an event never depends on batching, emission
//     speed, or which kinds a reader keeps: the bid, auction and person
//     streams each read the same event sequence and keep their own kind.
//   - Ids: person ids and auction ids start at 1000 and follow the event id
//     (lastBase0PersonId / lastBase0AuctionId). A reference to a person picks
//     one of the last 1,000 active people plus 10 not yet created; to an
//     auction, one of the last 100 in-flight auctions plus 10 ahead.
//   - Hot keys: an auction's seller is, with probability 3/4
//     (hotSellersRatio 4), the first person of the current block of 100; a
//     bid's auction is, with probability 1/2 (hotAuctionRatio 2), the first
//     auction of the current block of 100; its bidder is, with probability
//     3/4 (hotBiddersRatio 4), the second person of the block of 100.
//   - Prices are round(10^(6u) * 100) cents for u uniform in [0, 1); an
//     auction's reserve is its initial bid plus another price; its category
//     is 10..14; it expires 1..2h ms after it starts, h being the event-time
//     span of the next 100 auctions (so about 100 auctions are in flight).
//   - Channels: half the bids come from one of four hot channels (Google,
//     Facebook, Baidu, Apple, each with a fixed URL), the others from
//     "channel-N", N < 10,000, whose URL is fixed per channel and, for 9 in
//     10 channels, carries "&channel_id=" and |reverse32(N)| (Java's
//     Math.abs(Integer.reverse(N))). URLs look like
//     https://www.nexmark.com/abc/d_ef/ghi/item.htm?query=1.
//   - People: names from 11 first and 9 last names, e-mail
//     "xxx@yyy.com", a credit card of four 4-digit groups, one of 10 cities
//     and 6 states (AZ, CA, ID, OR, WA, WY).
//   - `extra` pads each event to the standard average sizes (person 200,
//     auction 500, bid 100 bytes): its length is uniform in
//     [0.8 r, 1.2 r) where r is the average minus the size of the other
//     fields. Its letters are taken at a random offset of a per-seed pool of
//     random lowercase letters rather than drawn letter by letter (the
//     content carries no meaning; the lengths follow the rule).
//
// Differences from the Flink nexmark generator, on purpose: the random
// generator is a SplitMix64 stream rather than java.util.Random, so values
// differ from Flink's while following the same distributions; a bid's bidder
// gets the first-person offset (1000) once, as in Beam (the Flink copy adds
// it twice); URLs of hot and ordinary channels are fixed per seed rather than
// per process, so runs are reproducible.
package nexmark
