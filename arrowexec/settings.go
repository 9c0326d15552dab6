package arrowexec

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Settings are the engine settings (docs/settings.md lists them). They come, lowest precedence first, from defaults,
// a config file, FERRIS_* environment variables, SET statements and --set
// flags; each layer calls Set.
type Settings struct {
	MaxMemoryMB          int64         // max_memory_mb: global memory limit, 0 = unlimited
	MaxConnections       int           // max_connections: concurrent API/Flight connections
	CheckpointIntervalMS int64         // checkpoint_interval_ms (0: no checkpoints)
	StateDir             string        // state_dir: checkpoints go here ("": none)
	BatchSize            int           // batch_size: rows per batch from sources
	Linger               time.Duration // linger_ms: flush a partial batch after this long
	LateData             string        // late_data: default late-data strategy
	ChannelDepth         int           // channel_depth: batches buffered between stages
	DeadLetterPath       string        // dead_letter_path: default dead-letter file
	// Fault tolerance (fault.go): failure_strategy default ("" = dead_letter
	// when the pipeline has a dead-letter sink, else fail), dead_letter_topic
	// (a Kafka topic instead of the dead-letter file), max_query_memory_mb
	// (each query's own limit, 0 = none) and memory_wait_ms (how long an
	// allocation past a limit waits for memory before failing the query).
	FailureStrategy  string
	DeadLetterTopic  string
	MaxQueryMemoryMB int64
	MemoryWaitMS     int64
}

// DefaultSettings returns the built-in defaults.
func DefaultSettings() Settings {
	return Settings{
		MaxConnections:       1000,
		CheckpointIntervalMS: 10000,
		BatchSize:            4096,
		Linger:               100 * time.Millisecond,
		LateData:             "drop",
		ChannelDepth:         4,
		MemoryWaitMS:         1000,
	}
}

// LateDataStrategies are the accepted values of late_data.
var LateDataStrategies = []string{"drop", "dead_letter", "include_in_next_window", "update_previous"}

type setting struct {
	set func(s *Settings, v string) error
	get func(s *Settings) string
	doc string // one line for `ferris settings`
}

func intSetting(min int64, field func(*Settings) *int64, doc string) setting {
	return setting{
		doc: doc,
		set: func(s *Settings, v string) error {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil || n < min {
				return fmt.Errorf("want an integer >= %d, got %q", min, v)
			}
			*field(s) = n
			return nil
		},
		get: func(s *Settings) string { return strconv.FormatInt(*field(s), 10) },
	}
}

var settingsTable = map[string]setting{
	"max_memory_mb": intSetting(0, func(s *Settings) *int64 { return &s.MaxMemoryMB },
		"memory limit of the whole engine in MiB (0: unlimited)"),
	"checkpoint_interval_ms": intSetting(0, func(s *Settings) *int64 { return &s.CheckpointIntervalMS },
		"milliseconds between checkpoints when state_dir is set (0: none)"),
	"max_query_memory_mb": intSetting(0, func(s *Settings) *int64 { return &s.MaxQueryMemoryMB },
		"memory limit of each query in MiB (0: none)"),
	"memory_wait_ms": intSetting(0, func(s *Settings) *int64 { return &s.MemoryWaitMS },
		"how long an allocation past a memory limit waits for memory before its query fails"),
	"dead_letter_topic": {
		doc: "a Kafka topic dead letters go to instead of the dead-letter file",
		set: func(s *Settings, v string) error { s.DeadLetterTopic = strings.TrimSpace(v); return nil },
		get: func(s *Settings) string { return s.DeadLetterTopic },
	},
	"failure_strategy": {
		doc: "what a failing row or query does: " + strings.Join(FailureStrategies, ", ") +
			" (empty: dead_letter when the pipeline has a dead-letter sink, else fail)",
		set: func(s *Settings, v string) error {
			if v = strings.TrimSpace(v); v != "" {
				if err := CheckOneOf("failure_strategy", v, FailureStrategies...); err != nil {
					return err
				}
			}
			s.FailureStrategy = strings.ToLower(v)
			return nil
		},
		get: func(s *Settings) string { return s.FailureStrategy },
	},
	"max_connections": {
		doc: "concurrent connections the HTTP API and Arrow Flight accept",
		set: func(s *Settings, v string) error { return setInt(&s.MaxConnections, v, 1) },
		get: func(s *Settings) string { return strconv.Itoa(s.MaxConnections) },
	},
	"batch_size": {
		doc: "rows per batch read from sources",
		set: func(s *Settings, v string) error { return setInt(&s.BatchSize, v, 1) },
		get: func(s *Settings) string { return strconv.Itoa(s.BatchSize) },
	},
	"channel_depth": {
		doc: "batches buffered between stages",
		set: func(s *Settings, v string) error { return setInt(&s.ChannelDepth, v, 0) },
		get: func(s *Settings) string { return strconv.Itoa(s.ChannelDepth) },
	},
	"linger_ms": {
		doc: "milliseconds after which a source flushes a partial batch",
		set: func(s *Settings, v string) error {
			var ms int
			if err := setInt(&ms, v, 0); err != nil {
				return err
			}
			s.Linger = time.Duration(ms) * time.Millisecond
			return nil
		},
		get: func(s *Settings) string { return strconv.FormatInt(s.Linger.Milliseconds(), 10) },
	},
	"state_dir": {
		doc: "folder checkpoints are written to (empty: no checkpoints)",
		set: func(s *Settings, v string) error { s.StateDir = v; return nil },
		get: func(s *Settings) string { return s.StateDir },
	},
	"dead_letter_path": {
		doc: "the default dead-letter file (empty: PIPELINE.dead_letter.jsonl beside the pipeline)",
		set: func(s *Settings, v string) error { s.DeadLetterPath = v; return nil },
		get: func(s *Settings) string { return s.DeadLetterPath },
	},
	"late_data": {
		doc: "the default late-data strategy: " + strings.Join(LateDataStrategies, ", "),
		set: func(s *Settings, v string) error {
			if err := CheckOneOf("late_data", v, LateDataStrategies...); err != nil {
				return err
			}
			s.LateData = strings.ToLower(v)
			return nil
		},
		get: func(s *Settings) string { return s.LateData },
	},
}

func setInt(dst *int, v string, min int) error {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < min {
		return fmt.Errorf("want an integer >= %d, got %q", min, v)
	}
	*dst = n
	return nil
}

// CheckOneOf returns an error unless v (case-insensitive) is one of allowed.
func CheckOneOf(name, v string, allowed ...string) error {
	for _, a := range allowed {
		if strings.EqualFold(v, a) {
			return nil
		}
	}
	return fmt.Errorf("%s must be one of %s, got %q", name, strings.Join(allowed, ", "), v)
}

// Set assigns a setting by its snake_case name.
func (s *Settings) Set(name, value string) error {
	st, ok := settingsTable[strings.ToLower(name)]
	if !ok {
		return fmt.Errorf("unknown setting %q (known: %s)", name, strings.Join(SettingNames(), ", "))
	}
	if err := st.set(s, value); err != nil {
		return fmt.Errorf("setting %s: %w", name, err)
	}
	return nil
}

// Get returns a setting's value as text.
func (s *Settings) Get(name string) (string, bool) {
	st, ok := settingsTable[strings.ToLower(name)]
	if !ok {
		return "", false
	}
	return st.get(s), true
}

// SettingDoc describes a setting in one line ("" for an unknown name).
func SettingDoc(name string) string { return settingsTable[strings.ToLower(name)].doc }

// SettingNames lists every setting name, sorted.
func SettingNames() []string { return sortedKeys(settingsTable) }

// ApplyEnv applies FERRIS_<NAME> variables from environ (os.Environ form).
func (s *Settings) ApplyEnv(environ []string) error {
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(k, "FERRIS_") {
			continue
		}
		name := strings.ToLower(strings.TrimPrefix(k, "FERRIS_"))
		if _, known := settingsTable[name]; !known {
			continue // FERRIS_ variables of other components
		}
		if err := s.Set(name, v); err != nil {
			return fmt.Errorf("environment %s: %w", k, err)
		}
	}
	return nil
}

// MemoryLimitBytes is max_memory_mb in bytes (0: unlimited).
func (s *Settings) MemoryLimitBytes() int64 { return s.MaxMemoryMB << 20 }

// QueryMemoryLimitBytes is max_query_memory_mb in bytes (0: none).
func (s *Settings) QueryMemoryLimitBytes() int64 { return s.MaxQueryMemoryMB << 20 }

// String lists the settings as name=value lines, sorted.
func (s *Settings) String() string {
	names := SettingNames()
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		v, _ := s.Get(n)
		fmt.Fprintf(&b, "%s=%s\n", n, v)
	}
	return b.String()
}
