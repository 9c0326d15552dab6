package sinks

import (
	"io"

	"github.com/ferrisstreams/ferris/arrowexec"
)

// StdoutFactory returns a "stdout" connector factory that writes to w
// instead of os.Stdout (the CLI passes its output stream, tests a buffer).
func StdoutFactory(w io.Writer) arrowexec.SinkFactory {
	return func(spec arrowexec.SinkSpec) (arrowexec.Sink, error) {
		o, err := newOpts("stdout", spec, "header", "delimiter")
		if err != nil {
			return nil, err
		}
		return newWriterSink(o, spec.Schema, w)
	}
}
