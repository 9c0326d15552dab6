package agg

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/decimal128"

	"github.com/ferrisstreams/ferris/kernels"
)

// Hashing. The mixer is the 64x64->128 bit multiply-fold of wyhash; its
// high bits, which the hash table and HyperLogLog use, depend on every
// input bit. Every hash takes a seed that enters before mixing: group
// tables and DISTINCT sets hash their keys (which come from outside, e.g.
// Kafka) with a random per-process seed, so keys cannot be crafted to
// collide; HyperLogLog hashes with seed 0, so its estimates (and saved
// registers) are the same run to run.

const (
	k0 = 0xa0761d6478bd642f
	k1 = 0xe7037ed1a0b428db
	k2 = 0x8ebc6af09c88c6e3
	k3 = 0x589965cc75374cc3

	// nullHash is the hash of a NULL in any column.
	nullHash = 0x1d8e4e27c47d124f
)

// mum multiplies a and b into 128 bits and folds the halves.
func mum(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// hash64 hashes one 64-bit value.
func hash64(v, seed uint64) uint64 { return mum(v^seed^k0, k1) ^ mum(v^k2, seed^k3) }

// hash128 hashes one 128-bit value (a DECIMAL).
func hash128(lo, hi, seed uint64) uint64 { return mum(lo^seed^k0, hi^k1) ^ mum(hi^k2, lo^seed^k3) }

// combine folds the hash of the next key column into h.
func combine(h, v uint64) uint64 { return mum(h^k2, v^k3) }

// hashBytes hashes a byte string.
func hashBytes(b []byte, seed uint64) uint64 {
	n := len(b)
	h := uint64(n)*k0 ^ k1 ^ seed
	for len(b) >= 16 {
		h = mum(binary.LittleEndian.Uint64(b)^k1^h, binary.LittleEndian.Uint64(b[8:])^k2)
		b = b[16:]
	}
	var a, c uint64
	switch {
	case len(b) >= 8:
		a = binary.LittleEndian.Uint64(b)
		c = binary.LittleEndian.Uint64(b[len(b)-8:])
	case len(b) >= 4:
		a = uint64(binary.LittleEndian.Uint32(b))
		c = uint64(binary.LittleEndian.Uint32(b[len(b)-4:]))
	case len(b) > 0:
		a = uint64(b[0])<<16 | uint64(b[len(b)>>1])<<8 | uint64(b[len(b)-1])
	}
	return mum(mum(a^k1, c^h)^k3, uint64(n)^k0)
}

// processSeed is the hash seed of tables made by NewTable: random, chosen
// once per process.
var processSeed = randomSeed()

func randomSeed() uint64 {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("agg: no random hash seed: %v", err))
	}
	return binary.LittleEndian.Uint64(b[:])
}

// canonNaN is the bit pattern all NaNs are hashed, stored and compared as.
var canonNaN = math.Float64bits(math.NaN())

// floatKey returns the bits under which a DOUBLE is grouped: -0 as 0 and
// every NaN as one NaN, so that values SQL calls equal group together.
func floatKey(v float64) uint64 {
	if v != v {
		return canonNaN
	}
	return math.Float64bits(v + 0) // -0 + 0 == +0
}

// hashColumn writes the hash under seed of each row of a (rows nil: all
// rows, else those rows) into h. NULLs hash to nullHash.
func hashColumn(a arrow.Array, rows []int32, h []uint64, seed uint64) {
	switch kindOf(a.DataType()) {
	case kInt32:
		hashFixed(kernels.Values[int32](a), rows, h, seed)
	case kInt64:
		hashFixed(kernels.Values[int64](a), rows, h, seed)
	case kFloat64:
		vals := kernels.Values[float64](a)
		for k := range h {
			h[k] = hash64(floatKey(vals[rowOf(rows, k)]), seed)
		}
	case kDecimal:
		vals := kernels.Values[decimal128.Num](a)
		for k := range h {
			d := vals[rowOf(rows, k)]
			h[k] = hash128(d.LowBits(), uint64(d.HighBits()), seed)
		}
	case kString:
		offs, data := strCol(a)
		for k := range h {
			r := rowOf(rows, k)
			h[k] = hashBytes(data[offs[r]:offs[r+1]], seed)
		}
	case kBool:
		bm, off := boolCol(a)
		for k := range h {
			var v uint64
			if bit(bm, off+rowOf(rows, k)) {
				v = 1
			}
			h[k] = hash64(v, seed)
		}
	default: // NULL type
		for k := range h {
			h[k] = nullHash
		}
		return
	}
	if bm, off := validBits(a); bm != nil {
		for k := range h {
			if !bit(bm, off+rowOf(rows, k)) {
				h[k] = nullHash
			}
		}
	}
}

func hashFixed[T int32 | int64](vals []T, rows []int32, h []uint64, seed uint64) {
	if rows == nil {
		vals = vals[:len(h)]
		for k, x := range vals {
			h[k] = hash64(uint64(x), seed)
		}
		return
	}
	rows = rows[:len(h)]
	for k, r := range rows {
		h[k] = hash64(uint64(vals[r]), seed)
	}
}
