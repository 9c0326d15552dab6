package arrowexec

// CommonSourceOptions are WITH options every source accepts; the planner
// validates their values, connectors only need to not reject them.
var CommonSourceOptions = []string{
	"connector", "format",
	"event_time", "event_time_format", "watermark", "max_out_of_orderness",
	"punctuation_field", "idle_timeout",
	"late_data", "allowed_lateness",
	"batch_size", "linger_ms",
	"dead_letter_path", "state_ttl",
	"failure_strategy", "max_retries", "initial_delay", "max_delay", "multiplier", "jitter",
	"failure_threshold", "failure_window", "open_timeout", "half_open_calls", "breaker_max_open",
	"dead_letter_topic",
}

// CommonSinkOptions are WITH options every sink accepts.
var CommonSinkOptions = []string{
	"connector", "format",
	"dead_letter_path", "failure_strategy", "max_retries", "initial_delay", "max_delay", "multiplier", "jitter",
	"failure_threshold", "failure_window", "open_timeout", "half_open_calls", "breaker_max_open",
	"dead_letter_topic",
}

// FaultOptions are the fault-tolerance options (fault.go) a query accepts
// in its WITH clause with or without a sink connector.
var FaultOptions = []string{
	"failure_strategy", "max_retries", "initial_delay", "max_delay", "multiplier", "jitter",
	"failure_threshold", "failure_window", "open_timeout", "half_open_calls", "breaker_max_open",
	"dead_letter_topic", "dead_letter_path",
}
