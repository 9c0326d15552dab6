package sources

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// csvDecoder decodes RFC 4180 CSV records into column builders. Quoted
// fields may contain the delimiter, doubled quotes and line breaks. An
// unquoted empty field is NULL; a quoted empty field is the empty string
// for VARCHAR (and NULL otherwise). Surrounding spaces are trimmed from
// non-VARCHAR fields.
type csvDecoder struct {
	cols     []column
	delim    byte
	lr       *lineReader
	max      int
	fieldCol []int // field position -> column index, -1 to ignore
	spans    []span
	rec      []byte // a record joined from several lines
	joined   bool   // the last record was joined into rec
}

type span struct {
	start, end  int
	quoted, esc bool
}

var errUnterminated = errors.New("unterminated quoted field")

// init maps fields to columns: by header names when header is true (the
// first line is read here), else by position. A header must name every
// declared column (in any order, case-insensitively; other columns are
// ignored). An input without lines has no header and no rows, as an empty
// JSON input has no rows.
func (d *csvDecoder) init(ctx context.Context, header bool) error {
	byPosition := func() error {
		d.fieldCol = make([]int, len(d.cols))
		for i := range d.fieldCol {
			d.fieldCol[i] = i
		}
		return nil
	}
	if !header {
		return byPosition()
	}
	var line []byte
	for {
		l, tooLong, err := d.lr.next(ctx, time.Time{})
		if err == io.EOF {
			return byPosition() // empty: zero rows follow
		}
		if err != nil {
			return err
		}
		if tooLong {
			return fmt.Errorf("csv header longer than max_record_bytes (%d)", d.max)
		}
		if !blank(l) {
			line = l
			break
		}
	}
	rec, rerr, err := d.record(ctx, line)
	if err != nil {
		return err
	}
	if rerr != nil {
		return fmt.Errorf("csv header: %s", rerr.reason)
	}
	names := make([]string, len(d.spans))
	for k, sp := range d.spans {
		f := rec[sp.start:sp.end]
		if sp.esc {
			f = bytes.ReplaceAll(f, []byte(`""`), []byte(`"`))
		}
		names[k] = string(bytes.TrimSpace(f))
	}
	d.fieldCol = make([]int, len(names))
	for k := range d.fieldCol {
		d.fieldCol[k] = -1
	}
	var missing []string
	for ci := range d.cols {
		c := &d.cols[ci]
		k := indexName(names, c.name)
		if k < 0 {
			missing = append(missing, c.name)
			continue
		}
		d.fieldCol[k] = ci
	}
	if len(missing) > 0 {
		return fmt.Errorf("csv header does not name the declared columns %s; header: %s (set header = 'false' to read fields by position)",
			strings.Join(missing, ", "), strings.Join(names, ", "))
	}
	return nil
}

func indexName(names []string, name string) int {
	for k, n := range names {
		if n == name {
			return k
		}
	}
	for k, n := range names {
		if bytes.EqualFold([]byte(n), []byte(name)) {
			return k
		}
	}
	return -1
}

// record splits line into d.spans, reading continuation lines while a
// quoted field is open. The returned record is line itself or d.rec.
func (d *csvDecoder) record(ctx context.Context, line []byte) ([]byte, *recordError, error) {
	d.joined = false
	rec := line
	for {
		rerr := d.split(rec)
		if rerr != errUnterminated {
			if rerr != nil {
				return rec, &recordError{reason: rerr.Error()}, nil
			}
			return rec, nil, nil
		}
		if !d.joined {
			d.rec = append(d.rec[:0], line...)
			d.joined = true
		}
		next, tooLong, err := d.lr.next(ctx, time.Time{})
		if err == io.EOF {
			return d.rec, &recordError{reason: errUnterminated.Error()}, nil
		}
		if err != nil {
			return nil, nil, err
		}
		d.rec = append(append(d.rec, '\n'), next...)
		if tooLong || len(d.rec) > d.max {
			return d.rec, &recordError{reason: fmt.Sprintf("record longer than max_record_bytes (%d)", d.max)}, nil
		}
		rec = d.rec
	}
}

// split finds the fields of rec.
func (d *csvDecoder) split(rec []byte) error {
	d.spans = d.spans[:0]
	i, n := 0, len(rec)
	for {
		if i < n && rec[i] == '"' {
			sp := span{start: i + 1, quoted: true}
			j := i + 1
			for {
				k := bytes.IndexByte(rec[j:], '"')
				if k < 0 {
					return errUnterminated
				}
				j += k
				if j+1 < n && rec[j+1] == '"' {
					sp.esc = true
					j += 2
					continue
				}
				break
			}
			sp.end = j
			d.spans = append(d.spans, sp)
			i = j + 1
			if i == n {
				return nil
			}
			if rec[i] != d.delim {
				return fmt.Errorf("unexpected %q after a closing quote", rec[i])
			}
			i++
			continue
		}
		k := bytes.IndexByte(rec[i:], d.delim)
		if k < 0 {
			d.spans = append(d.spans, span{start: i, end: n})
			return nil
		}
		d.spans = append(d.spans, span{start: i, end: i + k})
		i += k + 1
	}
}

// decode stages and commits one record.
func (d *csvDecoder) decode(ctx context.Context, line []byte) (*recordError, error) {
	rec, rerr, err := d.record(ctx, line)
	if err != nil || rerr != nil {
		return rerr, err
	}
	if len(d.spans) != len(d.fieldCol) {
		return &recordError{reason: fmt.Sprintf("expected %d fields, found %d", len(d.fieldCol), len(d.spans))}, nil
	}
	for k, sp := range d.spans {
		ci := d.fieldCol[k]
		if ci < 0 {
			continue
		}
		c := &d.cols[ci]
		f := rec[sp.start:sp.end]
		if sp.esc {
			c.scratch = c.scratch[:0]
			for len(f) > 0 {
				q := bytes.IndexByte(f, '"')
				if q < 0 {
					c.scratch = append(c.scratch, f...)
					break
				}
				c.scratch = append(c.scratch, f[:q+1]...)
				f = f[q+2:]
			}
			f = c.scratch
		}
		if c.kind != KindString {
			f = bytes.TrimSpace(f)
		}
		if len(f) == 0 && (!sp.quoted || c.kind != KindString) {
			c.set = false
			continue
		}
		if pe := c.setText(f); pe != errNone {
			d.clear()
			return &recordError{field: c.name, reason: c.describe(pe, quoteToken(f))}, nil
		}
	}
	for i := range d.cols {
		if c := &d.cols[i]; !c.set && !c.nullable {
			d.clear()
			return &recordError{field: c.name, reason: "missing value for NOT NULL column " + c.name}, nil
		}
	}
	for i := range d.cols {
		d.cols[i].commit()
	}
	return nil, nil
}

func (d *csvDecoder) clear() {
	for i := range d.cols {
		d.cols[i].set = false
	}
}

func quoteToken(f []byte) []byte {
	return append(append([]byte{'"'}, f...), '"')
}
