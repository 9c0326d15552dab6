package main

import (
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/ferrisstreams/ferris/arrowexec"
)

var updateDocs = flag.Bool("update", false, "rewrite the settings table of docs/settings.md from the engine's settings")

const (
	settingsDoc   = "../../docs/settings.md"
	settingsBegin = "<!-- settings:begin -->\n"
	settingsEnd   = "<!-- settings:end -->\n"
)

// TestSettingsDoc checks that the table of docs/settings.md lists exactly the
// settings `ferris settings` prints, with their defaults, so the page cannot
// drift from the code. With -update it rewrites the names and defaults,
// keeping each setting's description (a new setting gets an empty one).
func TestSettingsDoc(t *testing.T) {
	b, err := os.ReadFile(settingsDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i, j := strings.Index(doc, settingsBegin), strings.Index(doc, settingsEnd)
	if i < 0 || j < i {
		t.Fatalf("%s: no table between %q and %q", settingsDoc, settingsBegin, settingsEnd)
	}
	table := doc[i+len(settingsBegin) : j]
	described := map[string]string{}
	for n, line := range strings.Split(strings.TrimSuffix(table, "\n"), "\n") {
		if n < 2 { // header and separator
			continue
		}
		cells := strings.Split(line, "|")
		if len(cells) < 5 {
			t.Fatalf("%s: table row %d has fewer than 3 cells: %q", settingsDoc, n+1, line)
		}
		name := strings.Trim(strings.TrimSpace(cells[1]), "`")
		described[name] = strings.TrimSpace(strings.Join(cells[3:len(cells)-1], "|"))
	}

	want := settingsTable(described)
	if *updateDocs {
		if err := os.WriteFile(settingsDoc, []byte(doc[:i+len(settingsBegin)]+want+doc[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if table != want {
		t.Errorf("%s is out of date with the engine's settings (go test ./cmd/ferris -run TestSettingsDoc -update rewrites it):\ngot:\n%s\nwant:\n%s", settingsDoc, table, want)
	}
	for name, d := range described {
		if d == "" {
			t.Errorf("%s: setting %s has no description", settingsDoc, name)
		}
	}
}

// settingsTable renders the settings table: every engine setting in name
// order with its default value and the description from described.
func settingsTable(described map[string]string) string {
	defaults := arrowexec.DefaultSettings()
	names := arrowexec.SettingNames()
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("| setting | default | what |\n|---|---|---|\n")
	for _, n := range names {
		v, _ := defaults.Get(n)
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", n, v, described[n])
	}
	return b.String()
}
