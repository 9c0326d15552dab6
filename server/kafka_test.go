package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// produceIDs writes records {"id":i} for i in [from, to) to topic, i%3 the
// partition.
func produceIDs(t *testing.T, cluster *kfake.Cluster, topic string, from, to int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for i := from; i < to; i++ {
		recs = append(recs, &kgo.Record{Topic: topic, Partition: int32(i % 3), Value: fmt.Appendf(nil, `{"id":%d}`, i)})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// waitIDs waits until the JSON-lines file holds n rows and returns how
// often each id occurs.
func waitIDs(t *testing.T, path string, n int) map[int]int {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		data, _ := os.ReadFile(path)
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(data) == 0 {
			lines = nil
		}
		if len(lines) >= n || time.Now().After(deadline) {
			ids := map[int]int{}
			for _, l := range lines {
				var row struct{ ID int }
				if err := json.Unmarshal([]byte(l), &row); err != nil {
					t.Fatalf("%s: %q: %v", path, l, err)
				}
				ids[row.ID]++
			}
			if len(lines) != n {
				t.Fatalf("%s: %d rows, want %d", filepath.Base(path), len(lines), n)
			}
			return ids
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkIDs fails unless ids holds each of [0, n) exactly once.
func checkIDs(t *testing.T, what string, ids map[int]int, n int) {
	t.Helper()
	for i := range n {
		if ids[i] != 1 {
			t.Errorf("%s: id %d seen %d times", what, i, ids[i])
		}
	}
}

// TestSharedKafkaStreamEveryReader: pipeline b reads the Kafka stream that
// pipeline a declares (with a consumer group) over a 3-partition topic. Each
// sees every record, each commits to its own group, and deleting a does not
// make b read anything again.
func TestSharedKafkaStreamEveryReader(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "ids"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	s, dir := startServer(t, "", 0)
	c := client{t: t, base: "http://" + s.HTTPAddr.String()}

	decl := fmt.Sprintf(`CREATE STREAM ids (id BIGINT) WITH (connector = 'kafka', topic = 'ids', brokers = '%s',
  group_id = 'g', linger_ms = '0');`, cluster.ListenAddrs()[0])
	sink := func(name string) string {
		return fmt.Sprintf(`CREATE STREAM %s_out AS SELECT id FROM ids WITH (connector = 'file', path = '%s.jsonl', format = 'json');`, name, name)
	}
	if code, body := c.do("POST", "/queries", register("a", decl+sink("a"))); code != http.StatusCreated {
		t.Fatalf("POST a: %d %s", code, body)
	}
	if code, body := c.do("POST", "/queries", register("b", sink("b"))); code != http.StatusCreated {
		t.Fatalf("POST b: %d %s", code, body)
	}
	produceIDs(t, cluster, "ids", 0, 30)
	checkIDs(t, "a", waitIDs(t, filepath.Join(dir, "a.jsonl"), 30), 30)
	checkIDs(t, "b", waitIDs(t, filepath.Join(dir, "b.jsonl"), 30), 30)

	// Each pipeline commits its position in its own group.
	adm, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	for _, group := range []string{"g", "g.b"} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			offs, err := kadm.NewClient(adm).FetchOffsets(ctx, group)
			cancel()
			var sum int64
			if err == nil {
				offs.Each(func(o kadm.OffsetResponse) { sum += o.At })
			}
			if sum == 30 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("group %s committed %d records, want 30 (%v)", group, sum, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	if code, _ := c.do("DELETE", "/queries/a", ""); code != http.StatusNoContent {
		t.Fatalf("DELETE a: %d", code)
	}
	produceIDs(t, cluster, "ids", 30, 60)
	checkIDs(t, "b after a was deleted", waitIDs(t, filepath.Join(dir, "b.jsonl"), 60), 60)
	time.Sleep(time.Second) // what b would read again would arrive by now
	checkIDs(t, "b after a was deleted", waitIDs(t, filepath.Join(dir, "b.jsonl"), 60), 60)
}
