package kafka

import (
	"errors"

	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// MarkError marks a Kafka client error with its class in the engine's
// error model (arrowexec.Classify): retriable Kafka errors
// (kerr.IsRetriable) and records that timed out or ran out of the client's
// own retries are transient; a record the broker refuses (too large,
// invalid) is a data error; anything else is left as it is (network errors
// are recognised as transient by Classify). It returns nil for nil.
func MarkError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, kgo.ErrRecordTimeout), errors.Is(err, kgo.ErrRecordRetries), kerr.IsRetriable(err):
		return arrowexec.Transient(err)
	case errors.Is(err, kerr.MessageTooLarge), errors.Is(err, kerr.RecordListTooLarge), errors.Is(err, kerr.InvalidRecord):
		return arrowexec.DataError(err)
	}
	return err
}

// Resumable implements arrowexec.Resumable: after Next returned an error
// it may be called again and continues where it stopped (the client keeps
// its fetch positions and the records of a poll are queued before a fetch
// error is returned), so the engine retries transient read errors.
func (s *source) Resumable() bool { return true }

var _ arrowexec.Resumable = (*source)(nil)
