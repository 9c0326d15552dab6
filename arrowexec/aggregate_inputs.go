package arrowexec

import (
	"context"
	"fmt"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/ferrisstreams/ferris/arrowexec/expr"
	"github.com/ferrisstreams/ferris/kernels"
)

// This file holds what the windowed operators (AggregateOp, SessionOp)
// share: evaluating their inputs, reading row times, and dead-lettering
// late rows.

// evalAggregateInputs evaluates cfg's key and argument expressions over
// batch. args[j] is nil for COUNT(*). The caller calls release once it is
// done with the arrays.
func evalAggregateInputs(ec *expr.Context, cfg *AggregateConfig, batch arrow.RecordBatch) (keys, args []arrow.Array, release func(), err error) {
	var all []arrow.Array
	release = func() {
		for _, x := range all {
			x.Release()
		}
	}
	for _, k := range cfg.Keys {
		v, err := k.Eval(ec, batch)
		if err != nil {
			release()
			return nil, nil, nil, fmt.Errorf("group key %s: %w", k, err)
		}
		all = append(all, v)
		keys = append(keys, v)
	}
	for _, e := range cfg.Args {
		if e == nil {
			args = append(args, nil)
			continue
		}
		v, err := e.Eval(ec, batch)
		if err != nil {
			release()
			return nil, nil, nil, fmt.Errorf("aggregate argument %s: %w", e, err)
		}
		all = append(all, v)
		args = append(args, v)
	}
	return keys, args, release, nil
}

// rowTimes returns the event times and row watermarks of batch (slices
// aliasing its columns); for processing time, the wall clock for both.
func rowTimes(cfg *AggregateConfig, batch arrow.RecordBatch) (ts, wm []int64) {
	if cfg.TimeCol >= 0 {
		return kernels.Values[int64](batch.Column(cfg.TimeCol)), kernels.Values[int64](batch.Column(cfg.WMCol))
	}
	now := time.Now().UnixMilli()
	ts = make([]int64, batch.NumRows())
	for i := range ts {
		ts[i] = now
	}
	return ts, ts
}

// deadLetterLate sends row i of batch, late at event time t against
// watermark w, to cfg's dead-letter sink (if any). what names the closed
// unit ("window" or "session"); why, if set, is appended to the reason.
func deadLetterLate(ctx context.Context, cfg *AggregateConfig, batch arrow.RecordBatch, i int, t, w int64, what, why string) error {
	if cfg.DeadLetter == nil {
		return nil
	}
	reason := fmt.Sprintf("late row: event time %s is behind watermark %s and its %s has closed", FormatWatermark(t), FormatWatermark(w), what)
	if why != "" {
		reason += " (" + why + ")"
	}
	return cfg.DeadLetter.DeadLetter(ctx, DeadLetterRecord{
		Time: time.Now().UTC(), Query: cfg.Query, Source: cfg.Source,
		Field: batch.Schema().Field(max(cfg.TimeCol, 0)).Name, Reason: reason, Raw: LateRaw(batch, i),
	})
}

// processingWatermark is the watermark an operator over cfg advances to on
// a message with watermark wm: for processing time, the wall clock (so
// windows close on time even while input is quiet, at each heartbeat of the
// source), otherwise wm.
func processingWatermark(cfg *AggregateConfig, wm Watermark) Watermark {
	if cfg.TimeCol >= 0 || wm == FinalWatermark {
		return wm
	}
	return max(wm, time.Now().UnixMilli())
}
