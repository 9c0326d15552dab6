package plan

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
	"github.com/ferrisstreams/ferris/plan/ast"
	"github.com/ferrisstreams/ferris/plan/sql"
)

// ParseDuration reads a duration option: a Go-style duration ("5s",
// "500ms", "1h30m"), "<n> <unit>" ("5 seconds", "1 minute"), an interval
// literal ("INTERVAL '5' SECOND") or a bare integer of milliseconds.
func ParseDuration(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	if n, err := strconv.ParseInt(t, 10, 64); err == nil && n >= 0 {
		return time.Duration(n) * time.Millisecond, nil
	}
	if d, err := time.ParseDuration(t); err == nil && d >= 0 {
		return d, nil
	}
	if strings.HasPrefix(strings.ToUpper(t), "INTERVAL") || strings.Contains(t, " ") {
		src := t
		if !strings.HasPrefix(strings.ToUpper(t), "INTERVAL") {
			src = "INTERVAL '" + t + "'"
		}
		if e, err := sql.ParseExpr(src); err == nil {
			if lit, ok := e.(*ast.Literal); ok && lit.Kind == ast.IntervalLit {
				if ms, err := intervalMillis(lit); err == nil && ms >= 0 {
					return time.Duration(ms) * time.Millisecond, nil
				}
			}
		}
	}
	return 0, fmt.Errorf("bad duration %q (examples: 5s, 500ms, '5 seconds', INTERVAL '5' SECOND)", s)
}

type optionCheck func(r *Relation, v string) error

func oneOf(allowed ...string) optionCheck {
	return func(_ *Relation, v string) error { return arrowexec.CheckOneOf("value", v, allowed...) }
}

func durationCheck(_ *Relation, v string) error {
	_, err := ParseDuration(v)
	return err
}

func intCheck(min int64) optionCheck {
	return func(_ *Relation, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < min {
			return fmt.Errorf("want an integer >= %d, got %q", min, v)
		}
		return nil
	}
}

func columnCheck(types ...arrow.Type) optionCheck {
	return func(r *Relation, v string) error {
		if r == nil {
			return nil
		}
		idx := r.Declared.FieldIndices(v)
		if len(idx) == 0 {
			return fmt.Errorf("unknown column %q in %s %q%s", v, r.noun(), r.Name, suggest(v, fieldNames(r.Declared.Fields())))
		}
		t := r.Declared.Field(idx[0]).Type
		for _, want := range types {
			if t.ID() == want {
				return nil
			}
		}
		if len(types) > 0 {
			return fmt.Errorf("column %q must be TIMESTAMP or BIGINT (epoch), not %s", v, t)
		}
		return nil
	}
}

func floatCheck(min float64) optionCheck {
	return func(_ *Relation, v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < min {
			return fmt.Errorf("want a number >= %g, got %q", min, v)
		}
		return nil
	}
}

// commonOptionChecks validate the values of the options every connector
// accepts (arrowexec.CommonSourceOptions / CommonSinkOptions).
var commonOptionChecks = map[string]optionCheck{
	"event_time":           columnCheck(arrow.TIMESTAMP, arrow.INT64),
	"event_time_format":    oneOf("iso8601", "epoch_millis", "epoch_seconds"),
	"watermark":            oneOf("bounded_out_of_orderness", "ascending", "punctuated"),
	"max_out_of_orderness": durationCheck,
	"punctuation_field":    columnCheck(),
	"idle_timeout":         durationCheck,
	"late_data":            oneOf(arrowexec.LateDataStrategies...),
	"allowed_lateness":     durationCheck,
	"batch_size":           intCheck(1),
	"linger_ms":            intCheck(0),
	"state_ttl":            durationCheck,
	"failure_strategy":     oneOf(arrowexec.FailureStrategies...),
	"max_retries":          intCheck(0),
	"initial_delay":        durationCheck,
	"max_delay":            durationCheck,
	"multiplier":           floatCheck(1),
	"jitter":               fractionCheck,
	"failure_threshold":    intCheck(0),
	"failure_window":       durationCheck,
	"open_timeout":         durationCheck,
	"half_open_calls":      intCheck(1),
	"breaker_max_open":     durationCheck,
	"dead_letter_topic":    nonEmptyCheck,
}

func checkOptions(r *Relation, with []ast.Option) error {
	for _, o := range with {
		if check, ok := commonOptionChecks[o.Key.Name]; ok {
			if err := check(r, o.Value); err != nil {
				return errorf(o.ValueAt, "option %s: %v", o.Key.Name, err)
			}
		}
	}
	return nil
}

func validateSourceOptions(r *Relation, with []ast.Option) error {
	if err := checkOptions(r, with); err != nil {
		return err
	}
	o := r.Options
	if o["watermark"] == "punctuated" && o["punctuation_field"] == "" {
		return errorf(r.At, "watermark = 'punctuated' needs punctuation_field")
	}
	if ev, ok := o["event_time"]; ok {
		r.EventTime = ev
	}
	r.Time.EpochFactor = 1
	if o["event_time_format"] == "epoch_seconds" {
		r.Time.EpochFactor = 1000
	}
	switch strings.ToLower(o["watermark"]) {
	case "ascending":
		r.Time.Strategy = arrowexec.Ascending
	case "punctuated":
		r.Time.Strategy = arrowexec.Punctuated
		r.Time.Punctuation = o["punctuation_field"]
		if t := r.Declared.Field(r.Declared.FieldIndices(r.Time.Punctuation)[0]).Type; t.ID() != arrow.BOOL {
			return errorf(r.At, "punctuation_field %q must be BOOLEAN", r.Time.Punctuation)
		}
	}
	if v, ok := o["max_out_of_orderness"]; ok {
		d, _ := ParseDuration(v)
		r.Time.DelayMS = d.Milliseconds()
	}
	if v, ok := o["idle_timeout"]; ok {
		d, _ := ParseDuration(v)
		r.Time.IdleMS = d.Milliseconds()
	}
	r.LateData = strings.ToLower(o["late_data"])
	if v, ok := o["allowed_lateness"]; ok {
		d, _ := ParseDuration(v)
		r.AllowedLatenessMS = d.Milliseconds()
	}
	if r.EventTime == "" && (o["watermark"] != "" || o["max_out_of_orderness"] != "") {
		return errorf(r.At, "watermark options need an event-time column: WATERMARK FOR col AS ... or event_time = 'col'")
	}
	return nil
}

// finishSchema sets the stream schema of a source relation: the declared
// columns, the event-time column as TIMESTAMP (a BIGINT one holds epoch
// milliseconds or seconds), and the hidden raw-record (RawRecords) and
// row-watermark columns.
func finishSchema(r *Relation) {
	if r.EventTime == "" {
		r.Schema = r.Declared
		return
	}
	fields := append([]arrow.Field(nil), r.sourceSchema().Fields()...)
	for i, f := range fields {
		if f.Name == r.EventTime {
			fields[i].Type = sqltypes.Timestamp
		}
	}
	fields = append(fields, arrow.Field{Name: arrowexec.RowWatermarkColumn, Type: arrow.PrimitiveTypes.Int64})
	r.Schema = arrow.NewSchema(fields, nil)
}

// keepsRawRecords reports whether the source of r keeps each record's
// original bytes (Relation.RawRecords): when its late rows may be
// dead-lettered (late_data, else the setting, is dead_letter or
// update_previous) and it reads JSON or CSV, from a file (a line) or Kafka
// (a message value). That copy of each record is the price of a replayable
// dead-letter record; streams whose late rows are not dead-lettered never
// pay it.
func keepsRawRecords(r *Relation, settingLateData string) bool {
	late := r.LateData
	if late == "" {
		late = strings.ToLower(settingLateData)
	}
	conn, format := r.Options["connector"], strings.ToLower(r.Options["format"])
	return r.EventTime != "" && (late == "dead_letter" || late == "update_previous") &&
		(conn == "file" || conn == "kafka") && (format == "" || format == "json" || format == "csv")
}

func validateSinkOptions(with []ast.Option) error { return checkOptions(nil, with) }
