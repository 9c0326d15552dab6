//go:build race

package arrowexec

// raceEnabled: the race detector slows the property tests ten times; with
// -short they take smaller inputs under it (lightTests).
const raceEnabled = true
