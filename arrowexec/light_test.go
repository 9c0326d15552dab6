package arrowexec

import "testing"

// lightTests reports -short under the race detector (raceEnabled): the
// property tests then run on the smallest inputs that still exercise every
// case, keeping `make test` within its time.
func lightTests() bool { return raceEnabled && testing.Short() }
