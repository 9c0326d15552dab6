package arrowexec

import (
	"encoding/json"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/ferrisstreams/ferris/kernels"
)

// RowJSON renders row i of batch as a JSON object for dead-letter records:
// keys in schema order, hidden columns (RowWatermarkColumn, RawRecordColumn) left out,
// numbers and booleans bare, everything else as its SQL text in quotes.
// It is for diagnostics, not a hot path.
func RowJSON(batch arrow.RecordBatch, i int) string {
	var b strings.Builder
	b.WriteByte('{')
	first := true
	for c, f := range batch.Schema().Fields() {
		if f.Name == RowWatermarkColumn || f.Name == RawRecordColumn {
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		b.Write(quoteJSON(f.Name))
		b.WriteByte(':')
		col := batch.Column(c)
		switch {
		case col.IsNull(i) || col.DataType().ID() == arrow.NULL:
			b.WriteString("null")
		case isBareJSON(col.DataType()):
			b.WriteString(kernels.Text(col, i))
		default:
			b.Write(quoteJSON(kernels.Text(col, i)))
		}
	}
	b.WriteByte('}')
	return b.String()
}

// LateRaw is the raw field of row i of batch's dead-letter record: the
// original record when the source kept it (RawRecordColumn), else RowJSON.
func LateRaw(batch arrow.RecordBatch, i int) string {
	if idx := batch.Schema().FieldIndices(RawRecordColumn); len(idx) > 0 {
		if col := batch.Column(idx[0]); !col.IsNull(i) {
			return kernels.Text(col, i)
		}
	}
	return RowJSON(batch, i)
}

func isBareJSON(t arrow.DataType) bool {
	switch t.ID() {
	case arrow.BOOL, arrow.INT32, arrow.INT64, arrow.DECIMAL128:
		return true
	}
	return false
}

func quoteJSON(s string) []byte {
	q, _ := json.Marshal(s) // a string always marshals
	return q
}
