package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	sdkresource "go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/ferrisstreams/ferris/arrowexec"
)

// DefaultBatchSampleRatio is the share of batch spans sampled when
// OTEL_TRACES_SAMPLER is not set: one query batch in a hundred is traced
// through its operators, while registration and planning spans are always
// recorded.
const DefaultBatchSampleRatio = 0.01

// TracingConfig configures OpenTelemetry tracing. TracingFromEnv reads it
// from the standard OTEL_* variables.
type TracingConfig struct {
	// Exporter is none (the default: no tracing, no cost), otlp, or
	// console (spans as JSON on Writer; "stdout" is a synonym).
	Exporter string
	// Protocol of the otlp exporter: http/protobuf (default) or grpc. The
	// endpoint, headers, TLS and timeout come from the exporters' own
	// OTEL_EXPORTER_OTLP_* variables (default endpoints: localhost:4318 for
	// HTTP, localhost:4317 for gRPC).
	Protocol string
	// Sampler and SamplerArg are OTEL_TRACES_SAMPLER and
	// OTEL_TRACES_SAMPLER_ARG: always_on, always_off, traceidratio,
	// parentbased_always_on, parentbased_always_off,
	// parentbased_traceidratio. Empty: ferris' default, which records
	// every control-plane span (registration, planning) and
	// DefaultBatchSampleRatio of the batch spans (SamplerArg overrides the
	// ratio), children following their parent.
	Sampler, SamplerArg string
	// ServiceName is the resource's service.name (OTEL_SERVICE_NAME,
	// default "ferris").
	ServiceName string
	// Writer receives console spans (default os.Stderr).
	Writer io.Writer
	// SpanExporter, when set, receives the spans instead of Exporter
	// (tests use tracetest.NewInMemoryExporter); Synchronous exports each
	// span as it ends rather than in batches.
	SpanExporter sdktrace.SpanExporter
	Synchronous  bool
}

// TracingFromEnv reads the OTEL_* variables through getenv (os.Getenv in
// the binary; a map in tests).
func TracingFromEnv(getenv func(string) string) TracingConfig {
	c := TracingConfig{
		Exporter:    strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER"))),
		Protocol:    strings.ToLower(strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"))),
		Sampler:     strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER"))),
		SamplerArg:  strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER_ARG")),
		ServiceName: strings.TrimSpace(getenv("OTEL_SERVICE_NAME")),
	}
	if c.Protocol == "" {
		c.Protocol = strings.ToLower(strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_PROTOCOL")))
	}
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		c.Exporter = "none"
	}
	return c
}

// Telemetry is the process's OpenTelemetry tracer provider and the engine's
// Tracer over it. A nil *Telemetry is valid: tracing is off and every
// method does nothing.
type Telemetry struct {
	provider *sdktrace.TracerProvider
	tracer   trace.Tracer
	prop     propagation.TraceContext
}

// NewTelemetry sets up tracing as cfg says. It returns nil (no tracing)
// for the none exporter. Nothing global is set: the returned Telemetry is
// injected where spans are made.
func NewTelemetry(ctx context.Context, cfg TracingConfig) (*Telemetry, error) {
	exp := cfg.SpanExporter
	if exp == nil {
		var err error
		switch cfg.Exporter {
		case "", "none":
			return nil, nil
		case "console", "stdout", "logging":
			w := cfg.Writer
			if w == nil {
				w = os.Stderr
			}
			exp, err = stdouttrace.New(stdouttrace.WithWriter(w))
		case "otlp":
			switch cfg.Protocol {
			case "", "http/protobuf", "http":
				exp, err = otlptracehttp.New(ctx)
			case "grpc":
				exp, err = otlptracegrpc.New(ctx)
			default:
				return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL %q: want http/protobuf or grpc", cfg.Protocol)
			}
		default:
			return nil, fmt.Errorf("OTEL_TRACES_EXPORTER %q: want none, otlp or console", cfg.Exporter)
		}
		if err != nil {
			return nil, fmt.Errorf("trace exporter: %w", err)
		}
	}
	sampler, err := samplerFor(cfg.Sampler, cfg.SamplerArg)
	if err != nil {
		return nil, err
	}
	name := cfg.ServiceName
	if name == "" {
		name = "ferris"
	}
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithSampler(sampler),
		sdktrace.WithResource(sdkresource.NewSchemaless(attribute.String("service.name", name))),
	}
	if cfg.Synchronous {
		opts = append(opts, sdktrace.WithSyncer(exp))
	} else {
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	return &Telemetry{provider: tp, tracer: tp.Tracer("github.com/ferrisstreams/ferris")}, nil
}

// samplerFor builds the sampler OTEL_TRACES_SAMPLER names.
func samplerFor(name, arg string) (sdktrace.Sampler, error) {
	ratio := func(def float64) (float64, error) {
		if arg == "" {
			return def, nil
		}
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil || r < 0 || r > 1 {
			return 0, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG %q: want a ratio between 0 and 1", arg)
		}
		return r, nil
	}
	switch name {
	case "":
		r, err := ratio(DefaultBatchSampleRatio)
		if err != nil {
			return nil, err
		}
		return sdktrace.ParentBased(batchSampler{batch: sdktrace.TraceIDRatioBased(r)}), nil
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "traceidratio":
		r, err := ratio(1)
		if err != nil {
			return nil, err
		}
		return sdktrace.TraceIDRatioBased(r), nil
	case "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "parentbased_traceidratio":
		r, err := ratio(1)
		if err != nil {
			return nil, err
		}
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(r)), nil
	}
	return nil, fmt.Errorf("OTEL_TRACES_SAMPLER %q: want always_on, always_off, traceidratio or parentbased_*", name)
}

// batchSampler samples root batch spans (the data plane: one per batch)
// with batch, and every other root span (the control plane).
type batchSampler struct{ batch sdktrace.Sampler }

func (s batchSampler) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	if isBatchSpan(p.Name) {
		return s.batch.ShouldSample(p)
	}
	return sdktrace.AlwaysSample().ShouldSample(p)
}

func (s batchSampler) Description() string {
	return "FerrisBatchSampler{" + s.batch.Description() + "}"
}

// isBatchSpan tells the per-batch span names (arrowexec's query batches,
// the Kafka source's batches).
func isBatchSpan(name string) bool {
	return strings.HasSuffix(name, ".batch")
}

// Tracer returns the engine's tracing hook, nil when tracing is off (the
// engine then starts no spans at all).
func (t *Telemetry) Tracer() arrowexec.Tracer {
	if t == nil {
		return nil
	}
	return t
}

// Shutdown flushes pending spans and stops the exporter.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.provider.Shutdown(ctx)
}

// Extract returns ctx with the remote span of an incoming request's W3C
// traceparent header, if it has one.
func (t *Telemetry) Extract(ctx context.Context, h http.Header) context.Context {
	if t == nil {
		return ctx
	}
	return t.prop.Extract(ctx, propagation.HeaderCarrier(h))
}

// StartSpan implements arrowexec.Tracer. Attributes are converted only for
// sampled spans.
func (t *Telemetry) StartSpan(ctx context.Context, name string, attrs []arrowexec.Attr, links ...string) (context.Context, func(error)) {
	var opts []trace.SpanStartOption
	for _, l := range links {
		sc := trace.SpanContextFromContext(t.prop.Extract(context.Background(), propagation.MapCarrier{"traceparent": l}))
		if sc.IsValid() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
		}
	}
	if isBatchSpan(name) {
		// Batch spans are roots, so their own sampling ratio applies
		// even under an always-sampled span (a run, a registration);
		// they link to it instead.
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
		}
		opts = append(opts, trace.WithNewRoot())
	}
	ctx, span := t.tracer.Start(ctx, name, opts...)
	if span.IsRecording() && len(attrs) > 0 {
		span.SetAttributes(otelAttrs(attrs)...)
	}
	return ctx, func(err error) {
		if err != nil && span.IsRecording() {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
			if pos, ok := errorPosition(err); ok {
				span.SetAttributes(attribute.Int("ferris.sql.line", pos.Line), attribute.Int("ferris.sql.column", pos.Column))
			}
		}
		span.End()
	}
}

// Recording implements arrowexec.Tracer.
func (t *Telemetry) Recording(ctx context.Context) bool {
	return trace.SpanFromContext(ctx).IsRecording()
}

// Traceparent implements arrowexec.Tracer.
func (t *Telemetry) Traceparent(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return ""
	}
	tid, sid := sc.TraceID(), sc.SpanID()
	return "00-" + tid.String() + "-" + sid.String() + "-" + sc.TraceFlags().String()
}

func otelAttrs(attrs []arrowexec.Attr) []attribute.KeyValue {
	kv := make([]attribute.KeyValue, 0, len(attrs))
	for _, a := range attrs {
		switch v := a.Value.(type) {
		case string:
			kv = append(kv, attribute.String(a.Key, v))
		case int:
			kv = append(kv, attribute.Int(a.Key, v))
		case int64:
			kv = append(kv, attribute.Int64(a.Key, v))
		case bool:
			kv = append(kv, attribute.Bool(a.Key, v))
		case float64:
			kv = append(kv, attribute.Float64(a.Key, v))
		default:
			kv = append(kv, attribute.String(a.Key, fmt.Sprint(v)))
		}
	}
	return kv
}

// errorPosition finds the SQL position of the first positioned error in
// err (a *SQLError from registration).
func errorPosition(err error) (PositionedError, bool) {
	var se *SQLError
	if errors.As(err, &se) {
		for _, e := range se.Errors {
			if e.Line > 0 {
				return e, true
			}
		}
	}
	return PositionedError{}, false
}
