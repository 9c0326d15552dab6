// Package sqltypes maps the SQL types of the FerrisStreams dialect to Arrow
// data types and back.
//
//	BOOLEAN        arrow.FixedWidthTypes.Boolean
//	INT            arrow.PrimitiveTypes.Int32
//	BIGINT         arrow.PrimitiveTypes.Int64
//	DOUBLE         arrow.PrimitiveTypes.Float64
//	DECIMAL(p,s)   *arrow.Decimal128Type{Precision: p, Scale: s}
//	VARCHAR        arrow.BinaryTypes.String
//	TIMESTAMP      Timestamp: milliseconds, UTC
//	DATE           arrow.FixedWidthTypes.Date32
//	INTERVAL       Interval: arrow Duration in milliseconds
package sqltypes

import (
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
)

var (
	Boolean   arrow.DataType = arrow.FixedWidthTypes.Boolean
	Int       arrow.DataType = arrow.PrimitiveTypes.Int32
	BigInt    arrow.DataType = arrow.PrimitiveTypes.Int64
	Double    arrow.DataType = arrow.PrimitiveTypes.Float64
	Varchar   arrow.DataType = arrow.BinaryTypes.String
	Timestamp arrow.DataType = &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}
	Date      arrow.DataType = arrow.FixedWidthTypes.Date32
	Interval  arrow.DataType = &arrow.DurationType{Unit: arrow.Millisecond}
	// Null is the type of an untyped NULL literal.
	Null arrow.DataType = arrow.Null
)

// MaxDecimalPrecision is the largest precision DECIMAL accepts (decimal128).
const MaxDecimalPrecision = 38

// Decimal returns DECIMAL(p,s).
func Decimal(precision, scale int32) arrow.DataType {
	return &arrow.Decimal128Type{Precision: precision, Scale: scale}
}

// FromName resolves a SQL type name (case-insensitive, synonyms accepted)
// with optional parameters, e.g. ("DECIMAL", 18, 4).
func FromName(name string, params ...int) (arrow.DataType, error) {
	switch strings.ToUpper(name) {
	case "BOOLEAN", "BOOL":
		return Boolean, nil
	case "INT", "INTEGER", "INT4":
		return Int, nil
	case "BIGINT", "INT8", "LONG":
		return BigInt, nil
	case "DOUBLE", "FLOAT", "FLOAT8", "REAL", "DOUBLE PRECISION":
		return Double, nil
	case "VARCHAR", "STRING", "TEXT", "CHAR":
		return Varchar, nil
	case "TIMESTAMP", "TIMESTAMPTZ":
		return Timestamp, nil
	case "DATE":
		return Date, nil
	case "INTERVAL":
		return Interval, nil
	case "DECIMAL", "NUMERIC":
		p, s := 38, 0
		if len(params) > 0 {
			p = params[0]
		}
		if len(params) > 1 {
			s = params[1]
		}
		if p < 1 || p > MaxDecimalPrecision {
			return nil, fmt.Errorf("DECIMAL precision %d out of range 1..%d", p, MaxDecimalPrecision)
		}
		if s < 0 || s > p {
			return nil, fmt.Errorf("DECIMAL scale %d out of range 0..%d", s, p)
		}
		return Decimal(int32(p), int32(s)), nil
	}
	return nil, fmt.Errorf("unknown type %s", name)
}

// Name renders an Arrow type as its SQL name, e.g. DECIMAL(18,4).
func Name(dt arrow.DataType) string {
	switch t := dt.(type) {
	case *arrow.BooleanType:
		return "BOOLEAN"
	case *arrow.Int32Type:
		return "INT"
	case *arrow.Int64Type:
		return "BIGINT"
	case *arrow.Float64Type:
		return "DOUBLE"
	case *arrow.Decimal128Type:
		return fmt.Sprintf("DECIMAL(%d,%d)", t.Precision, t.Scale)
	case *arrow.StringType:
		return "VARCHAR"
	case *arrow.TimestampType:
		return "TIMESTAMP"
	case *arrow.Date32Type:
		return "DATE"
	case *arrow.DurationType:
		return "INTERVAL"
	case *arrow.NullType:
		return "NULL"
	}
	return dt.String()
}

// IsNumeric reports whether dt is INT, BIGINT, DOUBLE or DECIMAL.
func IsNumeric(dt arrow.DataType) bool {
	switch dt.ID() {
	case arrow.INT32, arrow.INT64, arrow.FLOAT64, arrow.DECIMAL128:
		return true
	}
	return false
}
