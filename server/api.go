package server

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/sinks"
)

// DefaultMaxBodyBytes bounds a request body of the HTTP API.
const DefaultMaxBodyBytes = 1 << 20

// API is the HTTP API of a server (JSON):
//
//	POST   /queries               {"name": ..., "sql": ...} registers and starts a pipeline
//	GET    /queries               every pipeline with its counters
//	GET    /queries/{name}        one pipeline: state, rows in/out, dead-lettered, watermark, memory
//	GET    /queries/{name}/profile  per-operator rows, batches, time share, memory and the bottleneck
//	DELETE /queries/{name}        drains and removes a pipeline
//	GET    /streams               the streams of running pipelines and their columns
//	GET    /streams/{name}/rows   the stream's rows from now on as JSON lines (?limit=N)
//	GET    /healthz, /readyz      liveness and readiness (no token needed)
//
// When Token is set every other request needs "Authorization: Bearer
// <token>". SQL errors are 400 with each error's line and column. POST
// /queries takes the request's X-Correlation-ID (or makes one), echoes it,
// and puts it on the pipeline's spans; a W3C traceparent header makes the
// registration's spans part of the caller's trace.
type API struct {
	Registry     *Registry
	Token        string
	MaxBodyBytes int64
	// Grace bounds how long DELETE waits for a pipeline to drain.
	Grace time.Duration
	// Ready reports readiness; nil means ready.
	Ready func() error
	// Telemetry, when set, reads the caller's trace context.
	Telemetry *Telemetry
}

// Handler returns the API's routes.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if a.Ready != nil {
			if err := a.Ready(); err != nil {
				writeError(w, http.StatusServiceUnavailable, err)
				return
			}
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	mux.Handle("POST /queries", a.auth(a.create))
	mux.Handle("GET /queries", a.auth(a.list))
	mux.Handle("GET /queries/{name}", a.auth(a.get))
	mux.Handle("GET /queries/{name}/profile", a.auth(a.profile))
	mux.Handle("DELETE /queries/{name}", a.auth(a.remove))
	mux.Handle("GET /streams", a.auth(a.streams))
	mux.Handle("GET /streams/{name}/rows", a.auth(a.rows))
	return mux
}

// auth checks the bearer token, when one is configured.
func (a *API) auth(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !Authorized(a.Token, r.Header.Get("Authorization")) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="ferris"`)
			writeError(w, http.StatusUnauthorized, errors.New("missing or wrong bearer token"))
			return
		}
		h(w, r)
	})
}

// Authorized reports whether an Authorization header value carries token
// (always true when token is empty). The comparison is constant-time.
func Authorized(token, header string) bool {
	if token == "" {
		return true
	}
	got, ok := strings.CutPrefix(header, "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1
}

type createRequest struct {
	Name string `json:"name"`
	SQL  string `json:"sql"`
}

func (a *API) create(w http.ResponseWriter, r *http.Request) {
	limit := a.MaxBodyBytes
	if limit <= 0 {
		limit = DefaultMaxBodyBytes
	}
	var req createRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Errorf("request body over %d bytes", limit))
			return
		}
		writeError(w, http.StatusBadRequest, fmt.Errorf("want a JSON object {\"name\": ..., \"sql\": ...}: %v", err))
		return
	}
	if strings.TrimSpace(req.SQL) == "" {
		writeError(w, http.StatusBadRequest, errors.New(`"sql" is required`))
		return
	}
	cid := strings.TrimSpace(r.Header.Get("X-Correlation-ID"))
	if cid == "" {
		cid = strings.TrimSpace(r.Header.Get("X-Request-ID"))
	}
	if len(cid) > 128 {
		cid = cid[:128]
	}
	p, err := a.Registry.RegisterContext(a.Telemetry.Extract(r.Context(), r.Header), req.Name, req.SQL, cid)
	if p != nil {
		w.Header().Set("X-Correlation-ID", p.CorrelationID)
	}
	var sqlErr *SQLError
	switch {
	case errors.As(err, &sqlErr):
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "the SQL does not compile", "errors": sqlErr.Errors})
		return
	case errors.Is(err, ErrExists):
		writeError(w, http.StatusConflict, err)
		return
	case err != nil:
		writeError(w, http.StatusBadRequest, err)
		return
	}
	w.Header().Set("Location", "/queries/"+p.Name)
	writeJSON(w, http.StatusCreated, a.Registry.Status(p))
}

func (a *API) list(w http.ResponseWriter, _ *http.Request) {
	out := []PipelineStatus{}
	for _, p := range a.Registry.List() {
		out = append(out, a.Registry.Status(p))
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) get(w http.ResponseWriter, r *http.Request) {
	p, err := a.Registry.Get(r.PathValue("name"))
	if err != nil {
		writeError(w, http.StatusNotFound, err)
		return
	}
	writeJSON(w, http.StatusOK, a.Registry.Status(p))
}

// profile reports where a pipeline's time and memory go (see
// arrowexec.Profile).
func (a *API) profile(w http.ResponseWriter, r *http.Request) {
	p, err := a.Registry.Get(r.PathValue("name"))
	if err != nil {
		writeError(w, http.StatusNotFound, err)
		return
	}
	if r.URL.Query().Get("format") == "text" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_ = p.topo.Profile().WriteText(w)
		return
	}
	writeJSON(w, http.StatusOK, p.topo.Profile())
}

func (a *API) remove(w http.ResponseWriter, r *http.Request) {
	grace := a.Grace
	if grace <= 0 {
		grace = 10 * time.Second
	}
	if err := a.Registry.Remove(r.PathValue("name"), grace); err != nil {
		writeError(w, http.StatusNotFound, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// StreamInfo describes a stream of a running pipeline.
type StreamInfo struct {
	Name     string       `json:"name"`
	Pipeline string       `json:"pipeline"`
	Columns  []ColumnInfo `json:"columns"`
}

// ColumnInfo is a column name and its Arrow type.
type ColumnInfo struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

func (a *API) streams(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, a.Registry.Streams())
}

// rows streams a live tap of a stream as JSON lines until the stream ends,
// the client goes away, or limit rows were written.
func (a *API) rows(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	limit := int64(-1)
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, fmt.Errorf("limit: want a positive integer, got %q", v))
			return
		}
		limit = n
	}
	p, err := a.Registry.Stream(name)
	if err != nil {
		writeError(w, http.StatusNotFound, err)
		return
	}
	tap, pos, err := p.Topology().TapAt(name, 64)
	if err != nil {
		writeError(w, http.StatusGone, err)
		return
	}
	defer tap.Close()
	// Rows flow as long as the stream does: lift the server's timeouts.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	// A live tail: the rows that passed before the reader came are gone;
	// say how many, and where the stream's watermark is.
	w.Header().Set("Ferris-Rows-Before", strconv.FormatInt(pos.Rows, 10))
	w.Header().Set("Ferris-Watermark", arrowexec.FormatWatermark(pos.Watermark))
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	fw := flushWriter{w: w}
	sink, err := sinks.StdoutFactory(fw)(arrowexec.SinkSpec{Name: name, Schema: tap.Schema(), Options: arrowexec.Options{"format": "json"}})
	if err != nil {
		return
	}
	defer sink.Close()
	ctx := r.Context()
	if err := sink.Open(ctx); err != nil {
		return
	}
	for limit != 0 {
		msg, err := tap.Next(ctx)
		if err != nil {
			if !errors.Is(err, io.EOF) && ctx.Err() == nil {
				fmt.Fprintf(w, "{\"error\":%q}\n", err.Error())
			}
			return
		}
		if msg.Batch != nil && limit > 0 && msg.Batch.NumRows() > limit {
			cut := msg.Batch.NewSlice(0, limit)
			msg.Release()
			msg.Batch = cut
		}
		limit -= min(msg.Rows(), max(limit, 0))
		werr := sink.Write(ctx, msg)
		msg.Release()
		if werr != nil || sink.Flush(ctx) != nil {
			return
		}
	}
}

// flushWriter flushes the response after every write, so rows reach a
// streaming client as they are produced.
type flushWriter struct{ w http.ResponseWriter }

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if fl, ok := f.w.(http.Flusher); ok {
		fl.Flush()
	}
	return n, err
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}
