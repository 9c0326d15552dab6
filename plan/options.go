package plan

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/ferrisstreams/ferris/arrowexec"
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
		idx := r.Schema.FieldIndices(v)
		if len(idx) == 0 {
			return fmt.Errorf("unknown column %q in %s %q%s", v, r.noun(), r.Name, suggest(v, fieldNames(r.Schema.Fields())))
		}
		t := r.Schema.Field(idx[0]).Type
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
	"failure_strategy":     oneOf("log_and_continue", "dead_letter", "fail", "retry_with_backoff"),
	"max_retries":          intCheck(0),
	"initial_delay":        durationCheck,
	"max_delay":            durationCheck,
	"multiplier":           floatCheck(1),
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
	if r.Options["watermark"] == "punctuated" && r.Options["punctuation_field"] == "" {
		return errorf(r.At, "watermark = 'punctuated' needs punctuation_field")
	}
	if ev, ok := r.Options["event_time"]; ok {
		r.EventTime = ev
	}
	if v, ok := r.Options["max_out_of_orderness"]; ok {
		d, _ := ParseDuration(v)
		r.WatermarkDelayMS = d.Milliseconds()
	}
	return nil
}

func validateSinkOptions(with []ast.Option) error { return checkOptions(nil, with) }
