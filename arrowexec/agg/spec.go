// Package agg is the vectorised hash aggregation core of the executor: a
// Table maps key tuples to dense group ids and keeps, per aggregate call,
// the states of every group in typed struct-of-arrays columns.
//
// # Design
//
// Update works a batch at a time. Key columns are hashed column at a time
// into a []uint64; one pass over the hashes probes an open-addressing table
// (linear probing, power-of-two capacity, a 32-bit hash tag in every slot)
// and yields a []uint32 of group ids; key equality is checked column at a
// time, only for rows whose tag matched. Each aggregate is then updated by
// a loop specialised to its function and input type over (group ids,
// values), with NULL rows filtered out once per input column. There are no
// per-row interface calls, allocations or maps.
//
// # Semantics
//
// SQL standard / PostgreSQL, NULL-correct:
//
//   - NULL keys form one group per distinct tuple (NULL equals NULL when
//     grouping); DOUBLE keys group -0 with 0 and all NaNs together.
//   - COUNT(*) counts rows, COUNT(x) non-NULL x, COUNT(DISTINCT x) distinct
//     non-NULL x. Counts are BIGINT and never NULL.
//   - SUM(INT|BIGINT) is BIGINT; leaving the BIGINT range is an error
//     wrapping ErrOverflow ("SUM overflow"). SUM(DOUBLE) is DOUBLE (summed
//     in update order). SUM(DECIMAL(p,s)) is DECIMAL(38,s), accumulated
//     exactly in 128 bits: leaving the 128-bit range is an error in Update,
//     a final sum of more than 38 digits an error in Emit.
//   - AVG(INT|BIGINT) is DOUBLE (exact 128-bit sum, divided once);
//     AVG(DOUBLE) is DOUBLE; AVG(DECIMAL(p,s)) is DECIMAL(38, max(s,6)),
//     the exact quotient sum/count rounded half away from zero.
//   - MIN/MAX accept every type and return the input type: numbers,
//     DECIMAL, VARCHAR (byte-wise), BOOLEAN (false < true), TIMESTAMP,
//     DATE, INTERVAL. DOUBLE NaN sorts above every number (PostgreSQL):
//     MAX{1, NaN} = NaN, MIN{1, NaN} = 1.
//   - STDDEV_SAMP/STDDEV_POP/VAR_SAMP/VAR_POP (STDDEV and VARIANCE are the
//     _SAMP forms) are DOUBLE, computed with Welford's algorithm (Chan's
//     formula when groups are combined); NULL when the count is 0 (pop) or
//     below 2 (samp). DECIMAL input is converted to DOUBLE.
//   - FIRST_VALUE/LAST_VALUE return the value of the first/last row of the
//     group in update order, and do NOT skip NULLs: if that row's value is
//     NULL the result is NULL. The result type is the input type.
//   - APPROX_COUNT_DISTINCT is BIGINT: a HyperLogLog sketch of HLLRegisters
//     one-byte registers per group, estimated with Ertl's improved
//     (bias-free) estimator; the relative standard error is about
//     1.04/sqrt(HLLRegisters) = 9.2%, smaller (near exact) below about a
//     hundred distinct values. NULLs are ignored; no rows gives 0.
//   - DISTINCT is accepted for COUNT, SUM, AVG, STDDEV/VAR (each distinct
//     non-NULL value of a group counted once) and for MIN, MAX and
//     APPROX_COUNT_DISTINCT, where it changes nothing.
//   - SUM, AVG, MIN, MAX, STDDEV and VAR over no non-NULL rows are NULL.
//
// # Memory
//
// State is struct-of-arrays in Go memory owned by the Table: per group a
// slot share of the hash table (8 bytes per slot, load factor <= 1/2), the
// keys (fixed width, or one byte arena + offsets for VARCHAR) and per
// aggregate e.g. COUNT 8 bytes, SUM(BIGINT) 8 bytes + 1 bit, AVG 16 bytes,
// SUM/AVG(DECIMAL) 24 bytes, MIN/MAX(DECIMAL) 16 bytes + 1 bit, STDDEV 24
// bytes, APPROX_COUNT_DISTINCT 128 bytes; slices grow geometrically.
// Measured with COUNT(*), SUM(BIGINT), AVG(DOUBLE), MIN(DECIMAL(18,4)),
// MAX(BIGINT) over 10,000 BIGINT keys: about 100 bytes per group (see
// BenchmarkUpdate's state-B/group). Batch-sized scratch buffers come from a
// pool for the duration of a call and are not part of any table.
//
// An untyped NULL argument (arrow.Null) is accepted by COUNT (0),
// APPROX_COUNT_DISTINCT (0), MIN, MAX, FIRST_VALUE and LAST_VALUE (result
// type NULL).
package agg

import (
	"errors"
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/ferrisstreams/ferris/kernels/sqltypes"
)

// Spec is one aggregate call of a query.
type Spec struct {
	// Func is the lower-case function name: count_star, count, sum, avg,
	// min, max, stddev_samp, stddev_pop, var_samp, var_pop, first_value,
	// last_value, approx_count_distinct; stddev and variance are accepted as
	// stddev_samp and var_samp.
	Func string
	// Distinct is COUNT(DISTINCT x), SUM(DISTINCT x), ...
	Distinct bool
	// Input is the type of the argument; nil for count_star.
	Input arrow.DataType
}

// ErrOverflow is wrapped by the errors of results that leave their type's
// range (e.g. "SUM overflow").
var ErrOverflow = errors.New("aggregate overflow")

// HLLRegisters is the number of HyperLogLog registers (one byte each) per
// group of an APPROX_COUNT_DISTINCT.
const HLLRegisters = 1 << hllP

// canonical returns the function name with aliases resolved.
func canonical(f string) string {
	switch f {
	case "stddev":
		return "stddev_samp"
	case "variance":
		return "var_samp"
	}
	return f
}

// ResultType is the SQL result type of s, or an error naming the function
// and the unsupported input type.
func ResultType(s Spec) (arrow.DataType, error) {
	f := canonical(s.Func)
	name := strings.ToUpper(s.Func)
	if s.Distinct {
		switch f {
		case "count_star", "first_value", "last_value":
			return nil, fmt.Errorf("DISTINCT is not supported for %s", name)
		}
	}
	if f == "count_star" {
		return sqltypes.BigInt, nil
	}
	switch f {
	case "count", "sum", "avg", "min", "max", "stddev_samp", "stddev_pop", "var_samp", "var_pop",
		"first_value", "last_value", "approx_count_distinct":
	default:
		return nil, fmt.Errorf("unknown aggregate function %s", name)
	}
	if s.Input == nil {
		return nil, fmt.Errorf("%s needs an argument", name)
	}
	in := s.Input
	k := kindOf(in)
	bad := func() (arrow.DataType, error) {
		return nil, fmt.Errorf("%s(%s) is not supported", name, sqltypes.Name(in))
	}
	if k == kUnsupported {
		return bad()
	}
	switch f {
	case "count", "approx_count_distinct":
		return sqltypes.BigInt, nil
	case "min", "max", "first_value", "last_value":
		return in, nil
	case "sum":
		switch in.ID() {
		case arrow.INT32, arrow.INT64:
			return sqltypes.BigInt, nil
		case arrow.FLOAT64:
			return sqltypes.Double, nil
		case arrow.DECIMAL128:
			return sqltypes.Decimal(38, in.(*arrow.Decimal128Type).Scale), nil
		}
	case "avg":
		switch in.ID() {
		case arrow.INT32, arrow.INT64, arrow.FLOAT64:
			return sqltypes.Double, nil
		case arrow.DECIMAL128:
			return sqltypes.Decimal(38, avgScale(in)), nil
		}
	default: // stddev, var
		if sqltypes.IsNumeric(in) {
			return sqltypes.Double, nil
		}
	}
	return bad()
}

// avgScale is the result scale of AVG over a DECIMAL type.
func avgScale(dt arrow.DataType) int32 { return max(dt.(*arrow.Decimal128Type).Scale, 6) }
