package oracle

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// boundMS is the watermark bound of every generated stream:
// WATERMARK FOR ts AS ts - INTERVAL '5' SECOND.
const boundMS = 5000

// row is one input record of the stream ev. Nil pointers are NULLs.
type row struct {
	k, s *string
	i    *int64
	d    *float64
	m    *string // DECIMAL(10,2) as text
	ts   int64   // event time, epoch milliseconds
}

// dataset is the input of one case: the event stream ev and the bounded
// lookup input dim (for joins and subqueries).
type dataset struct {
	ev  []row
	dim []dimRow
}

type dimRow struct {
	k     *string
	label *string
	w     *int64
}

var (
	keys    = []string{"a", "b", "c"}
	strs    = []string{"abc", " Ab-1 ", "x,y,z", "", "Hello World", "a%b", "ÀB", "123", "b"}
	labels  = []string{"one", "two", "Three", ""}
	epochs  = []int64{-30_000, -315_619_200_000, 1_704_067_200_000, -5_000} // around 1970, 1960, 2024
	steps   = []int64{0, 0, 500, 1000, 1000, 2500, 4000, 7000}
	offsets = []int64{0, 500, 1000, 2000, 4000, 5000, 6000, 9000, 15000}
)

// genData makes n rows starting near one of epochs. Rows arrive out of order:
// with inBound only by at most the watermark bound (no row is ever late),
// otherwise also later than it (late rows). Before1970 false keeps every
// event time after the epoch.
func genData(r *rand.Rand, n int, inBound, before1970 bool) dataset {
	var ds dataset
	base := epochs[r.IntN(len(epochs))]
	if !before1970 {
		base = epochs[2]
	}
	maxTS := base
	for range n {
		maxTS += steps[r.IntN(len(steps))]
		ts := maxTS
		if r.IntN(3) == 0 {
			off := offsets[r.IntN(len(offsets))]
			if inBound && off > boundMS {
				off = boundMS
			}
			ts -= off
		}
		ds.ev = append(ds.ev, row{
			k:  maybe(r, 8, func() string { return keys[r.IntN(len(keys))] }),
			s:  maybe(r, 7, func() string { return strs[r.IntN(len(strs))] }),
			i:  maybe(r, 6, func() int64 { return int64(r.IntN(41) - 20) }),
			d:  maybe(r, 6, func() float64 { return float64(r.IntN(801)-400) / 4 }),
			m:  maybe(r, 6, func() string { return decText(int64(r.IntN(200001) - 100000)) }),
			ts: ts,
		})
	}
	for range 2 + r.IntN(5) {
		ds.dim = append(ds.dim, dimRow{
			k:     maybe(r, 8, func() string { return keys[r.IntN(len(keys))] }),
			label: maybe(r, 6, func() string { return labels[r.IntN(len(labels))] }),
			w:     maybe(r, 6, func() int64 { return int64(r.IntN(21) - 10) }),
		})
	}
	return ds
}

// maybe returns nil (NULL) once in oneIn draws, else a value from f.
func maybe[T any](r *rand.Rand, oneIn int, f func() T) *T {
	if r.IntN(oneIn) == 0 {
		return nil
	}
	v := f()
	return &v
}

func decText(cents int64) string {
	sign := ""
	if cents < 0 {
		sign, cents = "-", -cents
	}
	return fmt.Sprintf("%s%d.%02d", sign, cents/100, cents%100)
}

// watermarks returns each row's watermark as of the rows before it: the
// largest event time seen before it minus the bound; ok false for the
// first row (no watermark yet).
func watermarks(rows []row) (wm []int64, ok []bool) {
	var maxTS int64
	for n, r := range rows {
		wm = append(wm, maxTS-boundMS)
		ok = append(ok, n > 0)
		if n == 0 || r.ts > maxTS {
			maxTS = r.ts
		}
	}
	return wm, ok
}

func tsText(ms int64) string { return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z") }

func jsonStr(p *string) string {
	if p == nil {
		return "null"
	}
	return strconv.Quote(*p)
}

func jsonNum[T int64 | float64](p *T) string {
	if p == nil {
		return "null"
	}
	return fmt.Sprint(*p)
}

func decNum(p *string) string {
	if p == nil {
		return "null"
	}
	return *p
}

// jsonLines renders ev.jsonl and dim.jsonl.
func (ds dataset) jsonLines() (ev, dim string) {
	var b strings.Builder
	for _, r := range ds.ev {
		fmt.Fprintf(&b, `{"k":%s,"s":%s,"i":%s,"d":%s,"m":%s,"ts":%q}`+"\n",
			jsonStr(r.k), jsonStr(r.s), jsonNum(r.i), jsonNum(r.d), decNum(r.m), tsText(r.ts))
	}
	ev = b.String()
	b.Reset()
	for _, r := range ds.dim {
		fmt.Fprintf(&b, `{"k":%s,"label":%s,"w":%s}`+"\n", jsonStr(r.k), jsonStr(r.label), jsonNum(r.w))
	}
	return ev, b.String()
}

// writeFiles writes ev.jsonl and dim.jsonl into dir.
func (ds dataset) writeFiles(dir string) error {
	ev, dim := ds.jsonLines()
	if err := os.WriteFile(filepath.Join(dir, "ev.jsonl"), []byte(ev), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "dim.jsonl"), []byte(dim), 0o644)
}

// engineDDL declares the two inputs for the engine.
const engineDDL = `CREATE STREAM ev (k VARCHAR, s VARCHAR, i BIGINT, d DOUBLE, m DECIMAL(10,2), ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
WITH (connector = 'file', path = 'ev.jsonl', format = 'json');
CREATE STREAM dim (k VARCHAR, label VARCHAR, w BIGINT)
WITH (connector = 'file', path = 'dim.jsonl', format = 'json');
CREATE STREAM evn (k VARCHAR, s VARCHAR, i BIGINT, d DOUBLE, m DECIMAL(10,2), ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
WITH (connector = 'file', path = 'ev.jsonl', format = 'json', late_data = 'include_in_next_window');
CREATE STREAM evu (k VARCHAR, s VARCHAR, i BIGINT, d DOUBLE, m DECIMAL(10,2), ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
WITH (connector = 'file', path = 'ev.jsonl', format = 'json', late_data = 'update_previous', allowed_lateness = '10s');
CREATE TABLE dimt (k VARCHAR, label VARCHAR, w BIGINT, PRIMARY KEY (k))
WITH (connector = 'file', path = 'dim.jsonl', format = 'json');
`

// duckDDL creates the same inputs in DuckDB, with each row's arrival
// position rid and its row watermark wm (NULL before the first row).
func (ds dataset) duckDDL() string {
	var b strings.Builder
	b.WriteString("CREATE OR REPLACE TABLE ev (rid BIGINT, k VARCHAR, s VARCHAR, i BIGINT, d DOUBLE, m DECIMAL(10,2), ts TIMESTAMP, wm BIGINT);\n")
	wm, ok := watermarks(ds.ev)
	for n, r := range ds.ev {
		w := "NULL"
		if ok[n] {
			w = strconv.FormatInt(wm[n], 10)
		}
		fmt.Fprintf(&b, "INSERT INTO ev VALUES (%d, %s, %s, %s, %s, %s, make_timestamp(%d), %s);\n",
			n, sqlStr(r.k), sqlStr(r.s), sqlNum(r.i), sqlNum(r.d), sqlDec(r.m), r.ts*1000, w)
	}
	b.WriteString("CREATE OR REPLACE TABLE dim (rid BIGINT, k VARCHAR, label VARCHAR, w BIGINT);\n")
	for n, r := range ds.dim {
		fmt.Fprintf(&b, "INSERT INTO dim VALUES (%d, %s, %s, %s);\n", n, sqlStr(r.k), sqlStr(r.label), sqlNum(r.w))
	}
	return b.String()
}

func sqlStr(p *string) string {
	if p == nil {
		return "NULL"
	}
	return "'" + strings.ReplaceAll(*p, "'", "''") + "'"
}

func sqlNum[T int64 | float64](p *T) string {
	if p == nil {
		return "NULL"
	}
	return "CAST(" + fmt.Sprint(*p) + " AS " + map[bool]string{true: "BIGINT", false: "DOUBLE"}[isInt(*p)] + ")"
}

func isInt[T int64 | float64](v T) bool {
	_, ok := any(v).(int64)
	return ok
}

func sqlDec(p *string) string {
	if p == nil {
		return "NULL"
	}
	return "CAST('" + *p + "' AS DECIMAL(10,2))"
}

// String renders the data for a failure report.
func (ds dataset) String() string {
	ev, dim := ds.jsonLines()
	return "ev.jsonl:\n" + ev + "dim.jsonl:\n" + dim
}
