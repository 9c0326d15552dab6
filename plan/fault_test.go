package plan

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferrisstreams/ferris/arrowexec"
)

// TestFaultOptionsValidated: bad retry, breaker and strategy options are
// compile errors at the value's line and column.
func TestFaultOptionsValidated(t *testing.T) {
	for _, c := range []struct{ opt, want string }{
		{"max_retries = 'x'", "option max_retries: want an integer >= 0"},
		{"jitter = '1.5'", "option jitter: want a number between 0 and 1"},
		{"multiplier = '0.5'", "option multiplier: want a number >= 1"},
		{"initial_delay = 'soon'", "option initial_delay: bad duration"},
		{"half_open_calls = '0'", "option half_open_calls: want an integer >= 1"},
		{"open_timeout = 'x'", "option open_timeout: bad duration"},
		{"failure_strategy = 'ignore'", "option failure_strategy: value must be one of log_and_continue, dead_letter, fail, retry_with_backoff"},
		{"dead_letter_topic = ' '", "option dead_letter_topic: must not be empty"},
	} {
		key, _, _ := strings.Cut(c.opt, " = ")
		prefix := "SELECT ticker FROM trades WITH (connector = 'stdout', " + key + " = "
		_, err := Compile(tradesDDL+prefix+strings.TrimPrefix(c.opt, key+" = ")+");", arrowexec.DefaultSettings(), nil)
		if err == nil {
			t.Errorf("%s: no error", c.opt)
			continue
		}
		// The error points at the value: line 3 (after the DDL's two).
		want := "line 3, column " + strconv.Itoa(len(prefix)+1) + ": " + c.want
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", c.opt, err, want)
		}
	}
	if _, err := Compile("SET failure_strategy = 'sometimes';", arrowexec.DefaultSettings(), nil); err == nil ||
		!strings.Contains(err.Error(), "failure_strategy must be one of") {
		t.Errorf("setting: %v", err)
	}
}

// TestQueryFaultOptionsWithoutSink: a bare SELECT or an internal stream
// takes fault-tolerance options without a connector; other options still
// need one.
func TestQueryFaultOptionsWithoutSink(t *testing.T) {
	p := compile(t, "SELECT ticker FROM trades WITH (failure_strategy = 'fail', max_retries = '1');\n"+
		"CREATE STREAM s AS SELECT ticker FROM trades WITH (failure_strategy = 'log_and_continue');")
	if got := p.Queries[0].Options["failure_strategy"]; got != "fail" || p.Queries[0].Sink.Connector != "stdout" {
		t.Fatalf("bare select: strategy %q, sink %v", got, p.Queries[0].Sink)
	}
	if got := p.Queries[1].Options["failure_strategy"]; got != "log_and_continue" || p.Queries[1].Sink != nil {
		t.Fatalf("internal stream: strategy %q, sink %v", got, p.Queries[1].Sink)
	}
	_, err := Compile(tradesDDL+"SELECT ticker FROM trades WITH (failure_strategy = 'fail', path = 'x');", arrowexec.DefaultSettings(), nil)
	if err == nil || !strings.Contains(err.Error(), "sink options need connector") {
		t.Fatalf("got %v", err)
	}
}

func TestFaultPolicy(t *testing.T) {
	r, b := faultPolicy(arrowexec.Options{})
	if r != arrowexec.DefaultRetryPolicy() || b != arrowexec.DefaultBreakerConfig() {
		t.Fatalf("defaults %+v %+v", r, b)
	}
	r, b = faultPolicy(arrowexec.Options{"max_retries": "7", "initial_delay": "50ms", "max_delay": "2 seconds", "multiplier": "1.5",
		"jitter": "0", "failure_threshold": "2", "failure_window": "10s", "open_timeout": "INTERVAL '1' MINUTE",
		"half_open_calls": "3", "breaker_max_open": "1h"})
	wantR := arrowexec.RetryPolicy{MaxRetries: 7, InitialDelay: 50 * time.Millisecond, MaxDelay: 2 * time.Second, Multiplier: 1.5}
	wantB := arrowexec.BreakerConfig{FailureThreshold: 2, FailureWindow: 10 * time.Second, OpenTimeout: time.Minute, HalfOpenCalls: 3, MaxOpen: time.Hour}
	if r != wantR || b != wantB {
		t.Fatalf("got %+v %+v", r, b)
	}
}
