package arrowexec

import "fmt"

// WindowKind is the kind of a time window.
type WindowKind int

const (
	Tumbling WindowKind = iota
	Sliding
	Session
	// Whole is one window holding every row of a bounded input, whatever
	// its event time, closed when the input ends (FinalWatermark).
	Whole
)

// WindowSpec describes a window: Tumbling windows of Size, Sliding windows
// of Size every Advance, or Session windows that end Gap after their last
// event. All in milliseconds; windows are half-open [start, end) and aligned
// to the epoch.
type WindowSpec struct {
	Kind               WindowKind
	Size, Advance, Gap int64
}

func (w *WindowSpec) String() string {
	switch w.Kind {
	case Tumbling:
		return fmt.Sprintf("TUMBLING(%dms)", w.Size)
	case Sliding:
		return fmt.Sprintf("SLIDING(%dms, %dms)", w.Size, w.Advance)
	case Whole:
		return "WHOLE INPUT"
	}
	return fmt.Sprintf("SESSION(%dms)", w.Gap)
}

// LateDataSpec is how a windowed operator treats rows whose windows have
// closed: Strategy is one of LateDataStrategies; AllowedLateness (ms) is
// how long after its end a window may still be updated (update_previous).
type LateDataSpec struct {
	Strategy        string
	AllowedLateness int64
}
