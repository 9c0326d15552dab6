package main

import (
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/ferrisstreams/ferris/arrowexec"
)

// TestCommandHelp: COMMAND --help prints that command's flags, and only
// those, on stdout and exits 0; another command's flag is refused.
func TestCommandHelp(t *testing.T) {
	for _, c := range []struct {
		cmd         string
		own, others []string
	}{
		{"run", []string{"set", "config", "progress", "duration", "metrics-addr"}, []string{"analyze", "http-addr", "kafka-addr", "token"}},
		{"explain", []string{"set", "config", "analyze", "duration"}, []string{"http-addr", "allow-path"}},
		{"validate", []string{"set", "config"}, []string{"progress", "duration", "analyze", "http-addr"}},
		{"settings", []string{"set", "config"}, []string{"progress", "http-addr", "analyze"}},
		{"server", []string{"set", "http-addr", "metrics-addr", "flight-addr", "token", "data-dir", "allow-path", "allow-brokers"}, []string{"kafka-addr", "registry-addr", "progress", "analyze"}},
		{"dev", []string{"http-addr", "kafka-addr", "registry-addr"}, []string{"progress", "duration", "analyze"}},
	} {
		code, out, errOut := ferris(t, c.cmd, "--help")
		if code != 0 || !strings.HasPrefix(out, "usage: ferris "+c.cmd) {
			t.Errorf("%s --help: exit %d, stdout %q, stderr %q", c.cmd, code, out, errOut)
			continue
		}
		for _, f := range c.own {
			if !regexp.MustCompile(`(?m)^  -` + f + `\b`).MatchString(out) {
				t.Errorf("%s --help lacks -%s:\n%s", c.cmd, f, out)
			}
		}
		for _, f := range c.others {
			if regexp.MustCompile(`(?m)^  -` + f + `\b`).MatchString(out) {
				t.Errorf("%s --help lists -%s, another command's flag:\n%s", c.cmd, f, out)
			}
		}
	}
	if code, _, errOut := ferris(t, "validate", "--progress", "never", "../../examples/quickstart.sql"); code != 2 || !strings.Contains(errOut, "-progress") {
		t.Errorf("validate --progress: exit %d, stderr %q", code, errOut)
	}
	for _, args := range [][]string{{"bench", "--help"}, {"bench", "nexmark", "-h"}} {
		if code, out, _ := ferris(t, args...); code != 0 || !strings.Contains(out, "--events N") {
			t.Errorf("%v: exit %d, stdout %q", args, code, out)
		}
	}
}

// TestFlagsAfterFile: flags following FILE.sql take effect; after "--"
// everything is a file name.
func TestFlagsAfterFile(t *testing.T) {
	code, out, errOut := ferris(t, "explain", "../../examples/quickstart.sql", "--analyze", "--progress", "never")
	if code != 0 || !strings.Contains(out, "ran for") {
		t.Fatalf("explain FILE --analyze: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, _, errOut = ferris(t, "validate", "../../examples/quickstart.sql", "--set", "late_data=sometimes")
	if code != 1 || !strings.Contains(errOut, "late_data must be one of") {
		t.Fatalf("validate FILE --set late_data=sometimes: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = ferris(t, "validate", "--", "--set")
	if code != 1 || !strings.Contains(errOut, "--set") {
		t.Fatalf("validate -- --set: exit %d, stderr %q", code, errOut)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := ferris(t, "version")
	if code != 0 || !strings.HasPrefix(out, "ferris ") || !strings.Contains(out, runtime.Version()) {
		t.Fatalf("version: exit %d, %q", code, out)
	}
	info := &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Path: "github.com/ferrisstreams/ferris", Version: "v1.2.3"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123abcd"}, {Key: "vcs.time", Value: "2026-01-02T03:04:05Z"}, {Key: "vcs.modified", Value: "true"}}}
	want := "ferris v1.2.3\nrevision 0123abcd 2026-01-02T03:04:05Z (modified)\ngo1.99.1\n"
	if got := versionText(info, true); got != want {
		t.Fatalf("versionText = %q, want %q", got, want)
	}
	if got := versionText(nil, false); got != "ferris unknown\nrevision unknown\n"+runtime.Version()+"\n" {
		t.Fatalf("versionText without build info = %q", got)
	}
}

// TestSettingsDescribed: ferris settings precedes every setting with a line
// describing it, and its output reads back as a --config file.
func TestSettingsDescribed(t *testing.T) {
	code, out, errOut := ferris(t, "settings", "--set", "batch_size=7")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(out, "\n")
	for _, name := range arrowexec.SettingNames() {
		doc := arrowexec.SettingDoc(name)
		if len(doc) < 10 {
			t.Errorf("%s: description %q", name, doc)
		}
		i := 0
		for i < len(lines) && !strings.HasPrefix(lines[i], name+"=") {
			i++
		}
		if i == 0 || i == len(lines) || lines[i-1] != "# "+doc {
			t.Errorf("%s is not listed after its description:\n%s", name, out)
		}
	}
	conf := filepath.Join(t.TempDir(), "ferris.conf")
	if err := os.WriteFile(conf, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	code, again, errOut := ferris(t, "settings", "--config", conf)
	if code != 0 || again != out {
		t.Fatalf("settings --config (its own output): exit %d, stderr %q\n%s", code, errOut, again)
	}
}
