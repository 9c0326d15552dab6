package arrowexec

import (
	"fmt"
	"runtime/debug"

	"github.com/ferrisstreams/ferris/arrowexec/resource"
)

// PanicError is the error of a source, operator or sink that panicked: the
// panic ends that query (or source), never the process. It is permanent
// (errors.Is(err, ErrPermanent)); Stack is the panicking goroutine's stack,
// for the log.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// Unwrap makes a PanicError permanent, and the panic value reachable when
// it is an error.
func (e *PanicError) Unwrap() []error {
	if err, ok := e.Value.(error); ok {
		return []error{ErrPermanent, err}
	}
	return []error{ErrPermanent}
}

// RecoverPanic turns a panic into an error stored in *err: a memory-limit
// panic (resource.LimitError) becomes that error, any other a *PanicError.
// Use it as `defer RecoverPanic(&err)` in every goroutine that runs a
// pipeline's sources, operators or sinks.
func RecoverPanic(err *error) {
	r := recover()
	if r == nil {
		return
	}
	if le, ok := r.(*resource.LimitError); ok {
		*err = le
		return
	}
	*err = &PanicError{Value: r, Stack: debug.Stack()}
}

// closeRecovered closes c, a panic in Close becoming its error.
func closeRecovered(c interface{ Close() error }) (err error) {
	defer RecoverPanic(&err)
	return c.Close()
}
