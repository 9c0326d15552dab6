package server

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
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

// TestRowsSaysWhatPassedBefore: a reader of /streams/NAME/rows who comes
// after rows passed is told how many (Ferris-Rows-Before) and where the
// stream's watermark is (Ferris-Watermark); it then gets only later rows.
func TestRowsSaysWhatPassedBefore(t *testing.T) {
	s, _ := startServer(t, "", 0)
	c := client{t: t, base: "http://" + s.HTTPAddr.String()}
	code, body := c.do("POST", "/queries", register("tail", `
CREATE STREAM ticks (ticker VARCHAR, volume BIGINT, trade_time TIMESTAMP,
  WATERMARK FOR trade_time AS trade_time - INTERVAL '1' SECOND)
WITH (connector = 'generator', rows = '0', rate = '2000', batch_size = '10');
SELECT ticker, volume FROM ticks;`))
	if code != http.StatusCreated {
		t.Fatalf("POST: %d %s", code, body)
	}
	deadline := time.Now().Add(20 * time.Second)
	var seen int64
	for seen < 50 {
		if time.Now().After(deadline) {
			t.Fatalf("the stream carried %d rows in 20 s", seen)
		}
		time.Sleep(20 * time.Millisecond)
		st := c.runningStatus("tail")
		seen = st.RowsOut
	}
	resp, err := http.Get(c.base + "/streams/tail/rows?limit=3")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	before, err := strconv.ParseInt(resp.Header.Get("Ferris-Rows-Before"), 10, 64)
	if err != nil || before < seen {
		t.Fatalf("Ferris-Rows-Before %q (%v), want at least the %d rows seen before the request", resp.Header.Get("Ferris-Rows-Before"), err, seen)
	}
	wm, err := time.Parse("2006-01-02T15:04:05.000Z", resp.Header.Get("Ferris-Watermark"))
	if err != nil || wm.Year() < 2000 {
		t.Fatalf("Ferris-Watermark %q (%v), want the stream's watermark", resp.Header.Get("Ferris-Watermark"), err)
	}
	sc := bufio.NewScanner(resp.Body)
	n := 0
	for sc.Scan() {
		n++
	}
	if n != 3 {
		t.Fatalf("%d rows after the tap started, want 3", n)
	}
}

// runningStatus returns the status of a running pipeline.
func (c client) runningStatus(name string) PipelineStatus {
	c.t.Helper()
	code, body := c.do("GET", "/queries/"+name, "")
	var st PipelineStatus
	if err := json.Unmarshal(body, &st); err != nil || code != http.StatusOK {
		c.t.Fatalf("GET /queries/%s: %d %s", name, code, body)
	}
	if st.State != "running" {
		c.t.Fatalf("pipeline %s is %s: %+v", name, st.State, st)
	}
	return st
}
