package sinks

import "github.com/apache/arrow-go/v18/arrow"

// AppendRow appends row i of batch as one CSV record, rendered as
// AppendBatch renders it but without the terminating "\n": the value of
// one message of a record-oriented sink (Kafka).
func (e CSVEncoder) AppendRow(dst []byte, batch arrow.RecordBatch, i int) []byte {
	for c, col := range batch.Columns() {
		if c > 0 {
			dst = append(dst, e.Delim)
		}
		dst = AppendCSVValue(dst, col, i, e.Delim)
	}
	return dst
}
