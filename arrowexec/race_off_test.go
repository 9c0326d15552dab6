//go:build !race

package arrowexec

const raceEnabled = false
