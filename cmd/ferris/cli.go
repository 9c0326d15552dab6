package main

import (
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/ferrisstreams/ferris/arrowexec"
)

// synopses are the usage lines of the commands commandFlags knows.
var synopses = map[string]string{
	"run":      "ferris run [flags] FILE.sql\n  run a pipeline until its bounded inputs end (Ctrl-C drains and stops)",
	"explain":  "ferris explain [flags] FILE.sql\n  print each query's logical, optimised and physical plan; --analyze runs it and reports where time and memory went",
	"validate": "ferris validate [flags] FILE.sql\n  check a pipeline; exit 1 listing every error with line and column",
	"settings": "ferris settings [flags]\n  list the engine settings, their values and what each does (a --config file)",
	"server":   "ferris server [flags] [FILE.sql ...]\n  serve the HTTP API, metrics and Arrow Flight, running the given pipelines and those POSTed to /queries",
	"dev":      "ferris dev [flags] [FILE.sql ...]\n  ferris server plus an in-process Kafka-compatible broker and schema registry",
}

// cliFlags holds the flags of every command; each command defines only its
// own (commandFlags), the rest keep their zero values.
type cliFlags struct {
	sets       setFlags
	configFile string
	analyze    bool
	svc        serviceFlags
	ro         runOptions
}

// commandFlags defines cmd's flags; fs is nil for an unknown command. Usage
// is left to the caller (printCommandUsage), errors go to stderr.
func commandFlags(cmd string, stderr io.Writer) (*flag.FlagSet, *cliFlags) {
	if _, ok := synopses[cmd]; !ok {
		return nil, nil
	}
	fs := flag.NewFlagSet("ferris "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {}
	f := &cliFlags{sets: setFlags{}, ro: runOptions{progress: "auto"}}
	fs.Var(f.sets, "set", "override an engine setting: name=value (repeatable); see 'ferris settings'")
	fs.StringVar(&f.configFile, "config", "", "settings file (name = value lines)")
	switch cmd {
	case "run", "explain":
		if cmd == "explain" {
			fs.BoolVar(&f.analyze, "analyze", false, "run the pipeline (stdout output discarded) and report where time and memory went; the flags below apply to it")
		}
		fs.StringVar(&f.ro.metricsAddr, "metrics-addr", "", "serve /metrics and /debug/pprof at this address while it runs (empty: none)")
		fs.StringVar(&f.ro.progress, "progress", "auto", "progress line on stderr: auto (when a terminal), always, never")
		fs.DurationVar(&f.ro.duration, "duration", 0, "stop (draining) after this long, e.g. 30s; 0: at the end of input")
	case "server", "dev":
		svc := &f.svc
		fs.StringVar(&svc.httpAddr, "http-addr", "127.0.0.1:8080", "HTTP API address (port 0: any free port)")
		fs.StringVar(&svc.metricsAddr, "metrics-addr", "127.0.0.1:9091", "/metrics and /debug/pprof address; - disables")
		fs.StringVar(&svc.flightAddr, "flight-addr", "127.0.0.1:8815", "Arrow Flight (gRPC) export of streams; - disables")
		fs.StringVar(&svc.token, "token", "", "bearer token the API and metrics require; prefer $FERRIS_TOKEN, as a flag shows in ps (empty: none)")
		fs.StringVar(&svc.dataDir, "data-dir", ".", "folder relative paths of pipelines resolve against; SQL may not name paths outside it")
		fs.Var(&svc.allowPaths, "allow-path", "another folder SQL may name paths under (repeatable)")
		fs.StringVar(&svc.allowBrokers, "allow-brokers", "", "the only Kafka brokers SQL may name (host:port,...); empty: any")
		if cmd == "dev" {
			fs.StringVar(&svc.kafkaAddr, "kafka-addr", "127.0.0.1:9092", "address of the in-process Kafka-compatible broker")
			fs.StringVar(&svc.registryAddr, "registry-addr", "127.0.0.1:8081", "address of the in-process schema registry; - disables")
		}
	}
	return fs, f
}

// parseInterspersed parses args with fs, accepting flags after the file
// names too; it returns the file names. After "--" everything is a name.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var names []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return names, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(names, rest...), nil
		}
		names = append(names, rest[0])
		args = rest[1:]
	}
}

// printCommandUsage writes a command's synopsis and flags to w.
func printCommandUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: %s\n\nflags:\n", synopses[strings.TrimPrefix(fs.Name(), "ferris ")])
	out := fs.Output()
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(out)
}

// printSettings lists the settings as a --config file: each one's
// description as a comment, then name=value.
func printSettings(w io.Writer, s *arrowexec.Settings) {
	for _, name := range arrowexec.SettingNames() {
		v, _ := s.Get(name)
		fmt.Fprintf(w, "# %s\n%s=%s\n", arrowexec.SettingDoc(name), name, v)
	}
}

// versionText describes the build from its build information (ok false:
// none): the module version, the VCS revision and the Go version.
func versionText(info *debug.BuildInfo, ok bool) string {
	version, revision, goVersion := "unknown", "unknown", runtime.Version()
	if ok {
		if info.Main.Version != "" {
			version = info.Main.Version
		}
		if info.GoVersion != "" {
			goVersion = info.GoVersion
		}
		var at, modified string
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.time":
				at = " " + s.Value
			case "vcs.modified":
				if s.Value == "true" {
					modified = " (modified)"
				}
			}
		}
		revision += at + modified
	}
	return fmt.Sprintf("ferris %s\nrevision %s\n%s\n", version, revision, goVersion)
}

// isHelp reports whether arg asks for help, as the flag package reads it.
func isHelp(arg string) bool {
	switch arg {
	case "-h", "--h", "-help", "--help":
		return true
	}
	return false
}
