package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/plan"
)

// TestKafkaSinkMissingTopicFails: a query writing to a topic that does not
// exist, on brokers that do not create topics, fails within its delivery
// timeout with an error naming the query, the operator and the topic,
// instead of retrying behind an open circuit breaker forever.
func TestKafkaSinkMissingTopicFails(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "other"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	const timeout = 5 * time.Second
	src := fmt.Sprintf(`CREATE STREAM ticks (ticker VARCHAR, price DECIMAL(18,4), volume BIGINT, trade_time TIMESTAMP)
WITH (connector = 'generator', rows = '5');
CREATE STREAM copied AS SELECT ticker, volume FROM ticks
WITH (connector = 'kafka', topic = 'absent', brokers = '%s', delivery_timeout_ms = '%d');`,
		cluster.ListenAddrs()[0], timeout.Milliseconds())
	p, err := plan.Compile(src, arrowexec.DefaultSettings(), nil)
	if err != nil {
		t.Fatal(err)
	}
	env, dl := newBuildEnv(p, filepath.Join(t.TempDir(), "p.sql"), io.Discard)
	defer dl.Close()
	topo, err := p.Build(env)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	err = topo.Run(ctx)
	took := time.Since(start)
	t.Logf("after %v: %v", took, err)
	if err == nil || ctx.Err() != nil || took > timeout+3*time.Second {
		t.Fatalf("run ended after %v (delivery timeout %v) with %v", took, timeout, err)
	}
	for _, want := range []string{`query "copied"`, "operator sink kafka", "topic absent does not exist"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %s", err, want)
		}
	}
	if !errors.Is(err, arrowexec.ErrPermanent) {
		t.Errorf("error %v is not permanent", err)
	}
}
