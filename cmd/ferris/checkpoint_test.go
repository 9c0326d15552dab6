package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestMain lets the test binary act as the ferris command, so that tests
// can run it as a child process and kill it (FERRIS_TEST_AS_MAIN=1).
func TestMain(m *testing.M) {
	if os.Getenv("FERRIS_TEST_AS_MAIN") == "1" {
		os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// ferrisProcess starts ferris with args as a child process.
func ferrisProcess(t *testing.T, stderr *strings.Builder, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "FERRIS_TEST_AS_MAIN=1")
	cmd.Stderr = &lockedWriter{b: stderr}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

type lockedWriter struct{ b *strings.Builder }

func (w *lockedWriter) Write(p []byte) (int, error) { return w.b.Write(p) }

// killAfterCheckpoint waits until dir holds its third checkpoint and then
// kills the process with SIGKILL. It reports false when the process ended
// on its own first.
func killAfterCheckpoint(t *testing.T, cmd *exec.Cmd, dir string) bool {
	t.Helper()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.After(2 * time.Minute)
	for {
		select {
		case err := <-exited:
			if err != nil {
				t.Fatalf("ferris failed before it was killed: %v", err)
			}
			return false
		case <-deadline:
			_ = cmd.Process.Kill()
			t.Fatal("no checkpoint written within 2 minutes")
		case <-time.After(5 * time.Millisecond):
		}
		// the third checkpoint: the first ones may be at the very start
		if m, _ := filepath.Glob(filepath.Join(dir, "chk-*", "manifest.json")); slices.ContainsFunc(m, func(p string) bool {
			return !strings.Contains(p, "chk-0000000001") && !strings.Contains(p, "chk-0000000002")
		}) {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			err := <-exited
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				return false // it had just finished
			}
			return true
		}
	}
}

// sortedLines reads a file's lines, sorted.
func sortedLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(lines)
	return lines
}

// writeTrades writes n JSON lines of trades: 20 symbols, one event per
// millisecond, slightly out of order.
func writeTrades(t *testing.T, path string, n int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	for i := range n {
		ts := base + int64(i) - int64(i%7)*3 // a little disorder
		fmt.Fprintf(w, `{"id":%d,"symbol":"S%02d","price":%d.%02d,"qty":%d,"ts":"%s"}`+"\n",
			i, i*7%20, 100+i%50, i%100, 1+i%13, time.UnixMilli(ts).UTC().Format("2006-01-02T15:04:05.000Z"))
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// checkpointPipeline is a pipeline over trades.jsonl (or, with brokers
// set, the Kafka topic trades) writing out.jsonl.
func checkpointPipeline(query, brokers string) string {
	with := `connector = 'file', path = 'trades.jsonl', format = 'json'`
	if brokers != "" {
		with = fmt.Sprintf(`connector = 'kafka', topic = 'trades', brokers = '%s', end_offset = 'latest'`, brokers)
	}
	return `
CREATE STREAM trades (
  id BIGINT, symbol VARCHAR, price DECIMAL(10,2), qty BIGINT, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '50' MILLISECOND
) WITH (` + with + `);

CREATE STREAM out AS
` + query + `
WITH (connector = 'file', path = 'out.jsonl', format = 'json');
`
}

// TestKillAndRecoverFile kills ferris with SIGKILL in the middle of a file
// and restarts it: the output equals an uninterrupted run's, with no row
// lost or repeated (the file sink is cut back to its committed length).
func TestKillAndRecoverFile(t *testing.T) {
	for _, tc := range checkpointQueries {
		t.Run(tc.name, func(t *testing.T) {
			testKillAndRecover(t, checkpointPipeline(tc.query, ""), func(dir string, n int) {
				writeTrades(t, filepath.Join(dir, "trades.jsonl"), n)
			})
		})
	}
}

// checkpointQueries are the queries the kill tests run.
var checkpointQueries = []struct{ name, query string }{
	{"filter", `SELECT id, symbol, price * qty AS notional FROM trades WHERE qty > 3`},
	{"tumbling", `SELECT symbol, COUNT(*) AS n, SUM(price * qty) AS notional, AVG(price) AS avg_price, MIN(price) AS lo, window_start
FROM trades GROUP BY symbol WINDOW TUMBLING (INTERVAL '100' MILLISECOND)`},
	{"sliding", `SELECT symbol, COUNT(*) AS n, SUM(qty) AS q, MAX(price) AS hi, window_start, window_end
FROM trades GROUP BY symbol WINDOW SLIDING (INTERVAL '400' MILLISECOND, INTERVAL '100' MILLISECOND)`},
	{"session", `SELECT symbol, COUNT(*) AS n, SUM(qty) AS q, AVG(price) AS avg_price, STDDEV(qty) AS sd, MIN(price) AS lo, MAX(price) AS hi, window_start, window_end
FROM trades GROUP BY symbol WINDOW SESSION (INTERVAL '15' MILLISECOND)`},
	{"over", `SELECT id, symbol, ROW_NUMBER() OVER (PARTITION BY symbol ORDER BY ts) AS rn,
  SUM(qty) OVER (PARTITION BY symbol ORDER BY ts ROWS BETWEEN 9 PRECEDING AND CURRENT ROW) AS q10
FROM trades`},
}

// TestKillAndRecoverKafka is TestKillAndRecoverFile over a three-partition
// Kafka topic (a bounded read: end_offset = latest) on an in-process
// broker that outlives the killed process.
func TestKillAndRecoverKafka(t *testing.T) {
	for _, tc := range checkpointQueries {
		t.Run(tc.name, func(t *testing.T) {
			cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "trades"))
			if err != nil {
				t.Fatal(err)
			}
			defer cluster.Close()
			brokers := strings.Join(cluster.ListenAddrs(), ",")
			produced := 0
			testKillAndRecover(t, checkpointPipeline(tc.query, brokers), func(dir string, n int) {
				if produced >= n { // a retry with more input: produce the rest
					return
				}
				tmp := filepath.Join(dir, "trades.jsonl")
				writeTrades(t, tmp, n)
				produceLines(t, brokers, tmp, produced)
				produced = n
			})
		})
	}
}

// produceLines produces the lines of path after the first skip to topic
// trades, spread over its partitions by key.
func produceLines(t *testing.T, brokers, path string, skip int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokers, ",")...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var recs []*kgo.Record
	for i := 0; sc.Scan(); i++ {
		if i < skip {
			continue
		}
		recs = append(recs, &kgo.Record{Topic: "trades", Key: []byte(strconv.Itoa(i % 10)), Value: slices.Clone(sc.Bytes())})
		if len(recs) == 10000 {
			if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
				t.Fatal(err)
			}
			recs = recs[:0]
		}
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// testKillAndRecover runs pipeline (p.sql in a fresh folder, after input(dir,
// n) prepared n input rows) once uninterrupted, then with checkpoints,
// killed after its third checkpoint, and restarted; the restarted run's
// output must equal the uninterrupted one's.
func testKillAndRecover(t *testing.T, pipeline string, input func(dir string, n int)) {
	n := 200_000
	if testing.Short() {
		n = 100_000
	}
	for attempt := 0; ; attempt++ {
		dir := t.TempDir()
		input(dir, n)
		sql := filepath.Join(dir, "p.sql")
		if err := os.WriteFile(sql, []byte(pipeline), 0o644); err != nil {
			t.Fatal(err)
		}
		// the uninterrupted run
		if code, _, errOut := ferris(t, "run", "--progress", "never", sql); code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		want := sortedLines(t, filepath.Join(dir, "out.jsonl"))
		if len(want) == 0 {
			t.Fatal("the uninterrupted run wrote nothing")
		}
		if err := os.Remove(filepath.Join(dir, "out.jsonl")); err != nil {
			t.Fatal(err)
		}

		var stderr strings.Builder
		sets := []string{"run", "--progress", "never", "--set", "state_dir=state", "--set", "checkpoint_interval_ms=20",
			"--set", "batch_size=256"}
		cmd := ferrisProcess(t, &stderr, append(sets, sql)...)
		killed := killAfterCheckpoint(t, cmd, filepath.Join(dir, "state", "p"))
		if !killed {
			if attempt < 3 {
				n *= 2
				continue
			}
			t.Fatalf("ferris always finished before a checkpoint; stderr: %s", stderr.String())
		}
		partial := sortedLines(t, filepath.Join(dir, "out.jsonl"))
		ckpts, _ := filepath.Glob(filepath.Join(dir, "state", "p", "*"))
		t.Logf("killed after writing %d of %d rows; state: %v", len(partial), len(want), ckpts)
		code, _, errOut := ferris(t, append(sets, sql)...)
		if code != 0 {
			t.Fatalf("restart: exit %d: %s", code, errOut)
		}
		got := sortedLines(t, filepath.Join(dir, "out.jsonl"))
		if !strings.Contains(errOut, "resuming from checkpoint") {
			t.Fatalf("the restart did not resume from a checkpoint: %s", errOut)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("after kill and restart: %d rows, want %d (first difference at %d); restart stderr: %s",
				len(got), len(want), firstDiff(got, want), errOut)
		}
		if m, _ := filepath.Glob(filepath.Join(dir, "state", "p", "chk-*")); len(m) != 0 {
			t.Fatalf("checkpoints left after the input was processed completely: %v", m)
		}
		return
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestRunFailsWhenEveryCheckpointFailed: a run with checkpoints
// configured, none of which could be written (state_dir is a dangling
// symbolic link, so its folder cannot be made), exits non-zero naming the
// failure. The run is stopped by --duration, so nothing else fails.
func TestRunFailsWhenEveryCheckpointFailed(t *testing.T) {
	dir := t.TempDir()
	if err := os.Symlink(filepath.Join(dir, "missing", "target"), filepath.Join(dir, "state")); err != nil {
		t.Fatal(err)
	}
	sql := filepath.Join(dir, "p.sql")
	if err := os.WriteFile(sql, []byte(`CREATE STREAM trades (ticker VARCHAR, volume BIGINT)
WITH (connector = 'generator', rows = '1000000', rate = '1000', batch_size = '20');
CREATE STREAM out AS SELECT ticker, volume FROM trades WITH (connector = 'file', path = 'out.jsonl');`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := ferris(t, "run", "--progress", "never", "--duration", "600ms",
		"--set", "state_dir=state", "--set", "checkpoint_interval_ms=50", sql)
	if code == 0 || !strings.Contains(errOut, "no checkpoint could be written") || !strings.Contains(errOut, "file exists") {
		t.Fatalf("exit %d, stderr: %s", code, errOut)
	}
}
