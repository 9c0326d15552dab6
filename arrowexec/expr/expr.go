// Package expr compiles typed scalar expressions into vectorised evaluators
// over Arrow record batches. Constructors type-check their arguments, insert
// implicit casts, and return errors that describe the problem without a
// position (the planner adds "line L, column C: ").
//
// Values of literals (Lit) are Go values by SQL type:
//
//	NULL          nil (any type)
//	BOOLEAN       bool
//	INT           int32
//	BIGINT        int64
//	DOUBLE        float64
//	DECIMAL(p,s)  decimal128.Num (unscaled)
//	VARCHAR       string
//	TIMESTAMP     int64 milliseconds since the epoch (UTC)
//	DATE          int32 days since the epoch
//	INTERVAL      int64 milliseconds
package expr

import (
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Context carries what evaluation needs besides the batch.
type Context struct {
	Alloc memory.Allocator // allocates every result array
	Now   time.Time        // value of CURRENT_TIMESTAMP for this batch
}

// Expr is a compiled, typed scalar expression.
//
// Eval returns an array with batch.NumRows() rows that belongs to the caller
// (Release it). Eval never modifies or retains the batch. An Expr is
// immutable and safe for concurrent use.
type Expr interface {
	Type() arrow.DataType
	Eval(ctx *Context, batch arrow.RecordBatch) (arrow.Array, error)
	String() string
}
