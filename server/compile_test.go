package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestListAnswersWhileAPipelineCompiles: GET /queries answers while a
// large POST /queries is compiling (held there by the registry's hook),
// and the POST then registers its pipeline.
func TestListAnswersWhileAPipelineCompiles(t *testing.T) {
	s, _ := startServer(t, "", 0)
	c := client{t: t, base: "http://" + s.HTTPAddr.String()}
	if code, body := c.do("POST", "/queries", register("first", tradesDDL)); code != http.StatusCreated {
		t.Fatalf("POST first: %d %s", code, body)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	s.Registry.compiling = func() {
		close(entered)
		<-release
	}
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()
	vals := make([]string, 2000)
	for i := range vals {
		vals[i] = fmt.Sprint(i)
	}
	posted := make(chan int, 1)
	go func() {
		resp, err := http.Post(c.base+"/queries", "application/json", strings.NewReader(register("large",
			"SELECT ticker FROM trades WHERE volume IN ("+strings.Join(vals, ", ")+");")))
		if err != nil {
			posted <- 0
			return
		}
		resp.Body.Close()
		posted <- resp.StatusCode
	}()
	select {
	case <-entered:
	case <-time.After(20 * time.Second):
		t.Fatal("the POST never started compiling")
	}
	hc := &http.Client{Timeout: 3 * time.Second}
	resp, err := hc.Get(c.base + "/queries")
	if err != nil {
		t.Fatalf("GET /queries while a pipeline compiles: %v", err)
	}
	var all []PipelineStatus
	err = json.NewDecoder(resp.Body).Decode(&all)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || len(all) != 1 || all[0].Name != "first" {
		t.Fatalf("GET /queries: %d %+v (%v)", resp.StatusCode, all, err)
	}
	released = true
	close(release)
	if code := <-posted; code != http.StatusCreated {
		t.Fatalf("POST large: %d", code)
	}
	if code, _ := c.do("GET", "/queries/large", ""); code != http.StatusOK {
		t.Fatalf("GET /queries/large: %d", code)
	}
}
