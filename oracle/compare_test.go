package oracle

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"strings"
	"time"

	"github.com/duckdb/duckdb-go/v2"
)

// kind says how a result column is compared.
type kind int

const (
	exact  kind = iota // strings, booleans, timestamps: as text
	num                // integers and DECIMAL: exact numeric value
	approx             // DOUBLE: small relative tolerance
)

// cell is one normalised value: text for exact and num kinds (num as a
// reduced rational), f for approx; null for SQL NULL.
type cell struct {
	null, approx bool
	text         string
	f            float64
}

func (c cell) String() string {
	switch {
	case c.null:
		return "null"
	case c.approx:
		return fmt.Sprint(c.f)
	}
	return c.text
}

type result [][]cell

func (r result) String() string {
	var b strings.Builder
	for _, row := range r {
		for n, c := range row {
			if n > 0 {
				b.WriteString(" | ")
			}
			b.WriteString(c.String())
		}
		b.WriteString("\n")
	}
	return b.String()
}

// normalise turns v (a value decoded from the engine's JSON or scanned from
// DuckDB) into a cell of kind k.
func normalise(v any, k kind) (cell, error) {
	if v == nil {
		return cell{null: true}, nil
	}
	var text string
	switch x := v.(type) {
	case json.Number:
		text = x.String()
	case string:
		text = x
	case bool:
		text = fmt.Sprint(x)
	case time.Time:
		text = x.UTC().Format("2006-01-02T15:04:05.000Z")
	case duckdb.Decimal:
		r := new(big.Rat).SetFrac(x.Value, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(x.Scale)), nil))
		text = r.RatString()
	case *big.Int:
		text = x.String()
	case float64:
		text = fmt.Sprint(x)
		if k == approx {
			return cell{approx: true, f: x}, nil
		}
	case float32:
		text = fmt.Sprint(x)
	case int64, int32, int16, int8, uint64, uint32, uint16, uint8, int:
		text = fmt.Sprint(x)
	default:
		return cell{}, fmt.Errorf("unexpected value %v of type %T", v, v)
	}
	switch k {
	case num:
		r, ok := new(big.Rat).SetString(text)
		if !ok {
			return cell{}, fmt.Errorf("not a number: %q", text)
		}
		return cell{text: r.RatString()}, nil
	case approx:
		var f float64
		if _, err := fmt.Sscan(text, &f); err != nil {
			return cell{}, fmt.Errorf("not a number: %q", text)
		}
		return cell{approx: true, f: f}, nil
	}
	return cell{text: text}, nil
}

// engineResult decodes the engine's JSON lines, taking the columns named
// cols in order.
func engineResult(lines []string, cols []string, kinds []kind) (result, error) {
	var res result
	for _, l := range lines {
		dec := json.NewDecoder(bytes.NewReader([]byte(l)))
		dec.UseNumber()
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			return nil, fmt.Errorf("engine row %s: %w", l, err)
		}
		var row []cell
		for n, c := range cols {
			v, ok := m[c]
			if !ok {
				return nil, fmt.Errorf("engine row %s has no column %s", l, c)
			}
			x, err := normalise(v, kinds[n])
			if err != nil {
				return nil, fmt.Errorf("engine row %s, column %s: %w", l, c, err)
			}
			row = append(row, x)
		}
		res = append(res, row)
	}
	return res, nil
}

// duckResult runs query on db and normalises its rows.
func duckResult(db *sql.DB, query string, kinds []kind) (result, error) {
	rows, err := db.Query(query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var res result
	for rows.Next() {
		vals := make([]any, len(kinds))
		ptrs := make([]any, len(kinds))
		for n := range vals {
			ptrs[n] = &vals[n]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		var row []cell
		for n, v := range vals {
			x, err := normalise(v, kinds[n])
			if err != nil {
				return nil, fmt.Errorf("duckdb column %d: %w", n, err)
			}
			row = append(row, x)
		}
		res = append(res, row)
	}
	return res, rows.Err()
}

func cellsEqual(a, b cell) bool {
	if a.null || b.null {
		return a.null == b.null
	}
	if !a.approx || !b.approx {
		return a.approx == b.approx && a.text == b.text
	}
	if a.f == b.f || math.IsNaN(a.f) && math.IsNaN(b.f) {
		return true
	}
	return math.Abs(a.f-b.f) <= 1e-6*math.Max(1, math.Max(math.Abs(a.f), math.Abs(b.f)))
}

// sameMultiset reports whether a and b hold the same rows, each as often,
// in any order.
func sameMultiset(a, b result) bool {
	if len(a) != len(b) {
		return false
	}
	used := make([]bool, len(b))
next:
	for _, ra := range a {
		for n, rb := range b {
			if used[n] || len(ra) != len(rb) {
				continue
			}
			eq := true
			for c := range ra {
				if !cellsEqual(ra[c], rb[c]) {
					eq = false
					break
				}
			}
			if eq {
				used[n] = true
				continue next
			}
		}
		return false
	}
	return true
}
