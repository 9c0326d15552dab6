package kernels

import (
	"fmt"
	"math/bits"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Take returns a new array whose row j is row idx[j] of a (NULL when
// idx[j] < 0). Supported: BOOLEAN, fixed-width types, VARCHAR/BINARY, NULL.
func Take(alloc memory.Allocator, a arrow.Array, idx []int32) (arrow.Array, error) {
	return Interleave(alloc, a.DataType(), []arrow.Array{a}, nil, idx)
}

// Interleave builds an array of type dt with len(pos) rows whose row j is
// row pos[j] of parts[src[j]]; src nil means every row comes from parts[0].
// A negative src[j] or pos[j] gives NULL. All parts have type dt.
func Interleave(alloc memory.Allocator, dt arrow.DataType, parts []arrow.Array, src, pos []int32) (arrow.Array, error) {
	n := len(pos)
	if dt.ID() == arrow.NULL {
		return array.NewNull(n), nil
	}
	validity := gatherValidity(alloc, parts, src, pos)
	switch dt.ID() {
	case arrow.BOOL:
		out := allocBitmap(alloc, n)
		o := out.Bytes()
		for j, k := range pos {
			p := partOf(parts, src, j)
			if k < 0 || p == nil {
				continue
			}
			vals, off := boolBitmapOf(p)
			if bitutil.BitIsSet(vals, off+int(k)) {
				bitutil.SetBit(o, j)
			}
		}
		return finish(dt, n, validity, out), nil
	case arrow.STRING, arrow.BINARY:
		return gatherBinary(alloc, dt, parts, src, pos, validity), nil
	}
	fw, ok := dt.(arrow.FixedWidthDataType)
	if !ok {
		if validity != nil {
			validity.Release()
		}
		return nil, fmt.Errorf("kernels.Interleave: unsupported type %s", dt)
	}
	var buf *memory.Buffer
	switch fw.BitWidth() {
	case 8:
		buf = gatherFixed[uint8](alloc, parts, src, pos)
	case 16:
		buf = gatherFixed[uint16](alloc, parts, src, pos)
	case 32:
		buf = gatherFixed[uint32](alloc, parts, src, pos)
	case 64:
		buf = gatherFixed[uint64](alloc, parts, src, pos)
	case 128:
		buf = gatherFixed[decimal128.Num](alloc, parts, src, pos)
	default:
		if validity != nil {
			validity.Release()
		}
		return nil, fmt.Errorf("kernels.Interleave: unsupported type %s", dt)
	}
	return finish(dt, n, validity, buf), nil
}

func partOf(parts []arrow.Array, src []int32, j int) arrow.Array {
	if src == nil {
		return parts[0]
	}
	if src[j] < 0 {
		return nil
	}
	return parts[src[j]]
}

// gatherValidity returns the validity of an interleave, or nil if every
// output row is valid.
func gatherValidity(alloc memory.Allocator, parts []arrow.Array, src, pos []int32) *memory.Buffer {
	need := false
	for _, p := range parts {
		need = need || p.NullN() > 0
	}
	if !need {
		m := int32(0)
		for _, k := range pos {
			m |= k
		}
		for _, s := range src {
			m |= s
		}
		if m >= 0 { // no negative index
			return nil
		}
	}
	out := allocBitmap(alloc, len(pos))
	o := out.Bytes()
	// each part's bitmap (nil: every row valid) and offset; a part with
	// nulls and no bitmap (the NULL type) has no valid row
	bms := make([][]byte, len(parts))
	offs := make([]int, len(parts))
	none := make([]bool, len(parts))
	for i, p := range parts {
		if p.NullN() > 0 {
			bms[i], offs[i] = p.NullBitmapBytes(), p.Data().Offset()
			none[i] = bms[i] == nil
		}
	}
	if src == nil {
		bm, off := bms[0], offs[0]
		switch {
		case none[0]:
		case bm == nil:
			for j, k := range pos {
				if k >= 0 {
					o[j>>3] |= 1 << (j & 7)
				}
			}
		default:
			for j, k := range pos {
				if k >= 0 {
					i := off + int(k)
					o[j>>3] |= (bm[i>>3] >> (i & 7) & 1) << (j & 7)
				}
			}
		}
		return out
	}
	for j, k := range pos {
		s := src[j]
		if s < 0 || k < 0 || none[s] {
			continue
		}
		if bm := bms[s]; bm == nil {
			o[j>>3] |= 1 << (j & 7)
		} else {
			i := offs[s] + int(k)
			o[j>>3] |= (bm[i>>3] >> (i & 7) & 1) << (j & 7)
		}
	}
	return out
}

func gatherFixed[T Fixed](alloc memory.Allocator, parts []arrow.Array, src, pos []int32) *memory.Buffer {
	buf, o := allocFixed[T](alloc, len(pos))
	if src == nil {
		v := Values[T](parts[0])
		for j, k := range pos {
			if k >= 0 {
				o[j] = v[k]
			} else {
				var z T
				o[j] = z
			}
		}
		return buf
	}
	vals := make([][]T, len(parts))
	for i, p := range parts {
		vals[i] = Values[T](p)
	}
	for j, k := range pos {
		var z T
		if s := src[j]; s >= 0 && k >= 0 {
			z = vals[s][k]
		}
		o[j] = z
	}
	return buf
}

// binaryOffsets returns the offsets (len+1, honouring the array offset) and
// the data bytes of a VARCHAR/BINARY array.
func binaryOffsets(a arrow.Array) ([]int32, []byte) {
	d := a.Data()
	bufs := d.Buffers()
	if bufs[1] == nil || bufs[1].Len() == 0 {
		return make([]int32, a.Len()+1), nil
	}
	ob := bufs[1].Bytes()
	all := unsafe.Slice((*int32)(unsafe.Pointer(unsafe.SliceData(ob))), len(ob)/4)
	var data []byte
	if bufs[2] != nil {
		data = bufs[2].Bytes()
	}
	return all[d.Offset() : d.Offset()+d.Len()+1], data
}

// gatherBinary gathers VARCHAR/BINARY rows: the offsets in one pass,
// then the bytes, a run of consecutive rows of one part in one copy (a
// filter's selection is mostly such runs) and a short value byte by byte
// (cheaper than a memmove call for the few bytes of a typical value).
func gatherBinary(alloc memory.Allocator, dt arrow.DataType, parts []arrow.Array, src, pos []int32, validity *memory.Buffer) arrow.Array {
	n := len(pos)
	if src == nil {
		return takeBinary(alloc, dt, parts[0], pos, validity)
	}
	offs := make([][]int32, len(parts))
	datas := make([][]byte, len(parts))
	for i, p := range parts {
		offs[i], datas[i] = binaryOffsets(p)
	}
	obuf, o := allocFixed[int32](alloc, n+1)
	total := int32(0)
	for j, k := range pos {
		o[j] = total
		if s := src[j]; s >= 0 && k >= 0 {
			off := offs[s]
			total += off[k+1] - off[k]
		}
	}
	o[n] = total
	dbuf, d := allocFixed[uint8](alloc, int(total))
	for j := 0; j < n; {
		s, k := src[j], pos[j]
		if s < 0 || k < 0 {
			j++
			continue
		}
		e := j + 1
		for e < n && src[e] == s && pos[e] == pos[e-1]+1 {
			e++
		}
		off := offs[s]
		copyBytes(d[o[j]:o[e]], datas[s][off[k]:off[pos[e-1]+1]])
		j = e
	}
	return finish(dt, n, validity, obuf, dbuf)
}

// takeBinary is gatherBinary from one array.
func takeBinary(alloc memory.Allocator, dt arrow.DataType, a arrow.Array, pos []int32, validity *memory.Buffer) arrow.Array {
	n := len(pos)
	off, data := binaryOffsets(a)
	obuf, o := allocFixed[int32](alloc, n+1)
	total := int32(0)
	for j, k := range pos {
		o[j] = total
		if k >= 0 {
			total += off[k+1] - off[k]
		}
	}
	o[n] = total
	dbuf, d := allocFixed[uint8](alloc, int(total))
	for j := 0; j < n; {
		k := pos[j]
		if k < 0 {
			j++
			continue
		}
		e := j + 1
		for e < n && pos[e] == pos[e-1]+1 {
			e++
		}
		copyBytes(d[o[j]:o[e]], data[off[k]:off[pos[e-1]+1]])
		j = e
	}
	return finish(dt, n, validity, obuf, dbuf)
}

// copyBytes copies src into dst (of the same length), a short one byte by
// byte.
func copyBytes(dst, src []byte) {
	if len(src) > 16 {
		copy(dst, src)
		return
	}
	dst = dst[:len(src)]
	//lint:ignore S1001 deliberate: for a few bytes the loop is cheaper than copy's call to memmove
	for i, c := range src {
		dst[i] = c
	}
}

// Selection returns the indexes of the rows of mask that are true (NULL
// counts as false), appended to sel[:0].
func Selection(mask *array.Boolean, sel []int32) []int32 {
	sel = sel[:0]
	n := mask.Len()
	vals, off := boolBitmapOf(mask)
	var valid []byte
	if mask.NullN() > 0 {
		valid = mask.NullBitmapBytes()
	}
	for base := 0; base < n; base += 64 {
		w := loadBits(vals, off+base, min(64, n-base))
		if valid != nil {
			w &= loadBits(valid, off+base, min(64, n-base))
		}
		for w != 0 {
			sel = append(sel, int32(base+bits.TrailingZeros64(w)))
			w &= w - 1
		}
	}
	return sel
}

// loadBits returns up to 64 bits of bm starting at bit position pos; bits
// beyond length are zero.
func loadBits(bm []byte, pos, length int) uint64 {
	var w uint64
	first := pos >> 3
	shift := pos & 7
	nbytes := (shift + length + 7) >> 3
	for i := 0; i < nbytes && i < 9; i++ {
		b := uint64(bm[first+i])
		if i == 0 {
			w = b >> shift
		} else {
			s := 8*i - shift
			if s < 64 {
				w |= b << s
			}
		}
	}
	if length < 64 {
		w &= 1<<length - 1
	}
	return w
}

// Filter returns a new batch holding the rows of batch where mask is true
// (NULL counts as false). The result belongs to the caller. When every row
// passes it returns batch itself, retained. mask must have batch.NumRows()
// rows.
func Filter(alloc memory.Allocator, batch arrow.RecordBatch, mask *array.Boolean) (arrow.RecordBatch, error) {
	n := int(batch.NumRows())
	if mask.Len() != n {
		return nil, fmt.Errorf("kernels.Filter: mask has %d rows, batch %d", mask.Len(), n)
	}
	selBuf, sel := allocFixed[int32](alloc, n)
	defer selBuf.Release()
	sel = Selection(mask, sel[:0:n])
	if len(sel) == n {
		batch.Retain()
		return batch, nil
	}
	return TakeBatch(alloc, batch, sel)
}

// TakeBatch returns a new batch whose row j is row idx[j] of batch.
func TakeBatch(alloc memory.Allocator, batch arrow.RecordBatch, idx []int32) (arrow.RecordBatch, error) {
	cols := make([]arrow.Array, batch.NumCols())
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	for i := range cols {
		c, err := Take(alloc, batch.Column(i), idx)
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", batch.ColumnName(i), err)
		}
		cols[i] = c
	}
	return array.NewRecordBatch(batch.Schema(), cols, int64(len(idx))), nil
}

// Repeat returns a new array of n copies of row 0 of one.
func Repeat(alloc memory.Allocator, one arrow.Array, n int) (arrow.Array, error) {
	if one.DataType().ID() == arrow.NULL {
		return array.NewNull(n), nil
	}
	if one.IsNull(0) {
		return array.MakeArrayOfNull(alloc, one.DataType(), n), nil
	}
	buf, idx := allocFixed[int32](alloc, n)
	defer buf.Release()
	clear(idx)
	return Take(alloc, one, idx)
}
