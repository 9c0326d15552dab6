package ferris_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/arrowexec/resource"
	"github.com/ferrisstreams/ferris/plan"
	"github.com/ferrisstreams/ferris/plan/ast"
	"github.com/ferrisstreams/ferris/plan/sql"
	"github.com/ferrisstreams/ferris/sinks"
	"github.com/ferrisstreams/ferris/sources"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the expected results of testdata/slt files")

// TestSLT runs the conformance files testdata/slt/**/*.slt, each with a
// fresh engine and folder, files in parallel.
//
// Directives (records are separated by blank lines; # starts a comment):
//
//	file NAME              the following lines become file NAME in the test's folder
//	statement ok           the SQL compiles and builds; it is kept for later records
//	statement error RE     compiling, building or running the SQL fails with an error matching RE
//	query [rowsort] [batch_size=N]
//	                       the SQL runs to the end of its inputs; its rows, as JSON
//	                       lines, must equal the lines after ----, at batch sizes
//	                       1, 3 and the default (or only N, for output that
//	                       depends on batching, such as EMIT CHANGES)
//	query error RE         like statement error, for a query
//	deadletter             the dead-letter records of the previous query, as JSON
//	                       without their time (with "File": the dead_letter_path
//	                       option, when not the default), must equal the lines
//	                       after ----
func TestSLT(t *testing.T) {
	var files []string
	err := filepath.WalkDir("testdata/slt", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".slt") {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no .slt files found")
	}
	for _, f := range files {
		t.Run(strings.TrimPrefix(filepath.ToSlash(f), "testdata/slt/"), func(t *testing.T) {
			t.Parallel()
			runSLTFile(t, f)
		})
	}
}

type sltRecord struct {
	line     int      // first line of the record
	header   string   // directive line
	body     []string // SQL or file content
	expected []string // lines after ----
	hasSep   bool
}

func parseSLT(data string) []*sltRecord {
	var recs []*sltRecord
	var cur *sltRecord
	inExpected := false
	for i, line := range strings.Split(data, "\n") {
		trimmed := strings.TrimSpace(line)
		if cur == nil {
			if trimmed == "" || strings.HasPrefix(trimmed, "#") {
				continue
			}
			cur = &sltRecord{line: i + 1, header: trimmed}
			inExpected = false
			continue
		}
		if trimmed == "" {
			recs = append(recs, cur)
			cur = nil
			continue
		}
		if trimmed == "----" && !strings.HasPrefix(cur.header, "file") {
			cur.hasSep = true
			inExpected = true
			continue
		}
		if inExpected {
			cur.expected = append(cur.expected, line)
		} else {
			cur.body = append(cur.body, line)
		}
	}
	if cur != nil {
		recs = append(recs, cur)
	}
	return recs
}

func formatSLT(recs []*sltRecord, original string) string {
	// Keep the comments and layout before each record; rewrite records.
	lines := strings.Split(original, "\n")
	var b strings.Builder
	next := 0
	for _, r := range recs {
		for ; next < r.line-1; next++ {
			b.WriteString(lines[next] + "\n")
		}
		b.WriteString(r.header + "\n")
		for _, l := range r.body {
			b.WriteString(l + "\n")
		}
		if r.hasSep {
			b.WriteString("----\n")
			for _, l := range r.expected {
				b.WriteString(l + "\n")
			}
		}
		// skip the original record's lines
		n := 1 + len(r.body)
		for next = r.line - 1 + n; next < len(lines) && strings.TrimSpace(lines[next]) != ""; next++ {
		}
	}
	for ; next < len(lines); next++ {
		b.WriteString(lines[next])
		if next < len(lines)-1 {
			b.WriteString("\n")
		}
	}
	return b.String()
}

type sltRunner struct {
	t        *testing.T
	path     string
	dir      string
	kept     []ast.Statement
	lastDead []string
}

func runSLTFile(t *testing.T, path string) {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	recs := parseSLT(string(data))
	r := &sltRunner{t: t, path: path, dir: t.TempDir()}
	changed := false
	for _, rec := range recs {
		where := fmt.Sprintf("%s:%d", path, rec.line)
		fields := strings.Fields(rec.header)
		body := strings.Join(rec.body, "\n")
		switch {
		case fields[0] == "file" && len(fields) == 2:
			if err := os.WriteFile(filepath.Join(r.dir, fields[1]), []byte(body+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		case rec.header == "statement ok":
			stmts, err := sql.Parse(body)
			if err != nil {
				t.Errorf("%s: %v", where, err)
				continue
			}
			if _, err := r.compileAndBuild(stmts); err != nil {
				t.Errorf("%s: %v", where, err)
				continue
			}
			r.kept = append(r.kept, stmts...)
		case fields[0] == "statement" && len(fields) > 2 && fields[1] == "error",
			fields[0] == "query" && len(fields) > 2 && fields[1] == "error":
			re, err := regexp.Compile(strings.TrimSpace(strings.SplitN(rec.header, "error", 2)[1]))
			if err != nil {
				t.Fatalf("%s: bad regexp: %v", where, err)
			}
			_, err = r.run(body, 0)
			if err == nil {
				t.Errorf("%s: expected an error matching %q, got success", where, re)
			} else if !re.MatchString(err.Error()) {
				t.Errorf("%s: error %q does not match %q", where, err, re)
			}
		case fields[0] == "query":
			rowsort := slices.Contains(fields[1:], "rowsort")
			batches := []int{1, 3, 0}
			for _, f := range fields[1:] {
				if v, ok := strings.CutPrefix(f, "batch_size="); ok {
					n, err := strconv.Atoi(v)
					if err != nil {
						t.Fatalf("%s: bad %s", where, f)
					}
					batches = []int{n} // output depends on batching (EMIT CHANGES)
				}
			}
			var first []string
			ran := false // an empty result is a result too
			for _, batch := range batches {
				rows, err := r.run(body, batch)
				if err != nil {
					t.Errorf("%s (batch_size %d): %v", where, batch, err)
					break
				}
				if rowsort {
					slices.Sort(rows)
				}
				if !ran {
					first, ran = rows, true
					continue
				}
				if !slices.Equal(rows, first) {
					t.Errorf("%s: results differ between batch sizes:\nbatch_size %d:\n%s\nbatch_size 1:\n%s", where, batch, strings.Join(rows, "\n"), strings.Join(first, "\n"))
				}
			}
			if !ran {
				continue
			}
			want := append([]string(nil), rec.expected...)
			if rowsort {
				slices.Sort(want)
			}
			if *rewrite {
				if !slices.Equal(first, want) {
					rec.expected, rec.hasSep, changed = first, true, true
				}
				continue
			}
			if !slices.Equal(first, want) {
				t.Errorf("%s: query results differ\n--- got\n%s\n--- want\n%s", where, strings.Join(first, "\n"), strings.Join(want, "\n"))
			}
		case rec.header == "deadletter":
			got := r.lastDead
			if *rewrite {
				if !slices.Equal(got, rec.expected) {
					rec.expected, rec.hasSep, changed = got, true, true
				}
				continue
			}
			if !slices.Equal(got, rec.expected) {
				t.Errorf("%s: dead letters differ\n--- got\n%s\n--- want\n%s", where, strings.Join(got, "\n"), strings.Join(rec.expected, "\n"))
			}
		default:
			t.Fatalf("%s: unknown directive %q", where, rec.header)
		}
	}
	if *rewrite && changed {
		if err := os.WriteFile(path, []byte(formatSLT(recs, string(data))), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// compileAndBuild plans the kept statements plus stmts and builds (without
// running) the topology.
func (r *sltRunner) compileAndBuild(stmts []ast.Statement) (*plan.Pipeline, error) {
	p, err := plan.CompileStatements(append(slices.Clip(r.kept), stmts...), arrowexec.DefaultSettings(), nil)
	if err != nil {
		return nil, err
	}
	topo, err := p.Build(r.env(p, memory.NewGoAllocator(), &bytes.Buffer{}, nil))
	if err != nil {
		return nil, err
	}
	topo.Discard()
	return p, nil
}

func (r *sltRunner) env(p *plan.Pipeline, alloc memory.Allocator, stdout *bytes.Buffer, dl *recordingDeadLetter) plan.BuildEnv {
	conns := &arrowexec.Connectors{}
	sources.Register(conns)
	sinks.Register(conns)
	conns.RegisterSink("stdout", sinks.StdoutFactory(stdout))
	return plan.BuildEnv{
		Connectors: conns,
		Resources:  resource.NewManager(alloc, p.Settings.MemoryLimitBytes()),
		BaseDir:    r.dir,
		DeadLetter: func(path string) arrowexec.DeadLetter { return dl.file(path) },
	}
}

// run compiles the kept statements plus body and runs the pipeline at the
// given batch size (0: default), returning the stdout rows.
func (r *sltRunner) run(body string, batchSize int) ([]string, error) {
	r.lastDead = nil
	stmts, err := sql.Parse(body)
	if err != nil {
		return nil, err
	}
	overrides := map[string]string{}
	if batchSize > 0 {
		overrides["batch_size"] = strconv.Itoa(batchSize)
	}
	p, err := plan.CompileStatements(append(slices.Clip(r.kept), stmts...), arrowexec.DefaultSettings(), overrides)
	if err != nil {
		return nil, err
	}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(r.t, 0)
	var out bytes.Buffer
	dl := &recordingDeadLetter{}
	topo, err := p.Build(r.env(p, mem, &out, dl))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := topo.Run(ctx); err != nil {
		return nil, err
	}
	r.lastDead = dl.lines(r.dir)
	var rows []string
	sc := bufio.NewScanner(&out)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for sc.Scan() {
		rows = append(rows, sc.Text())
	}
	return rows, sc.Err()
}

// recordingDeadLetter keeps dead-letter records in memory, with the
// dead_letter_path they were sent to.
type recordingDeadLetter struct {
	mu    sync.Mutex
	recs  []arrowexec.DeadLetterRecord
	files []string
}

// file is the sink of one dead_letter_path ("": the default); nil d gives nil.
func (d *recordingDeadLetter) file(path string) arrowexec.DeadLetter {
	if d == nil {
		return nil
	}
	return deadLetterFunc(func(_ context.Context, rec arrowexec.DeadLetterRecord) error {
		d.mu.Lock()
		defer d.mu.Unlock()
		d.recs = append(d.recs, rec)
		d.files = append(d.files, path)
		return nil
	})
}

type deadLetterFunc func(context.Context, arrowexec.DeadLetterRecord) error

func (f deadLetterFunc) DeadLetter(ctx context.Context, rec arrowexec.DeadLetterRecord) error {
	return f(ctx, rec)
}

// lines renders the records sorted, without their time and with the test
// folder removed from paths.
func (d *recordingDeadLetter) lines(dir string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for i, rec := range d.recs {
		b, _ := json.Marshal(struct {
			File                                 string `json:",omitempty"`
			Source, Position, Field, Reason, Raw string
		}{d.files[i], rec.Source, rec.Position, rec.Field, rec.Reason, rec.Raw})
		out = append(out, strings.ReplaceAll(string(b), dir+string(filepath.Separator), ""))
	}
	slices.Sort(out)
	return out
}
