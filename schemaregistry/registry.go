// Package schemaregistry is a small in-memory schema registry speaking the
// subset of the Confluent REST API that producers and consumers of the
// Confluent wire format use, for ferris dev and tests:
//
//	POST /subjects/{subject}/versions          register {"schema", "schemaType"} → {"id"}
//	GET  /subjects                             subject names
//	GET  /subjects/{subject}/versions          version numbers
//	GET  /subjects/{subject}/versions/{v}      {"subject","version","id","schema"}; v may be "latest"
//	GET  /schemas/ids/{id}                     {"schema"}
//
// A schema text registered again (under any subject) keeps its id; under
// the same subject it keeps its version too. Schemas are not checked for
// compatibility, and nothing is persisted. Errors are Confluent's JSON
// {"error_code", "message"}, e.g. 40401 subject not found, 40403 schema not
// found.
package schemaregistry

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Registry is the in-memory store and its http.Handler. The zero value is
// not usable; use New. It is safe for concurrent use.
type Registry struct {
	mu       sync.Mutex
	schemas  []stored         // by id - 1
	byText   map[string]int   // schema type + text → id
	subjects map[string][]int // subject → id of each version (version = index + 1)
	mux      *http.ServeMux
}

type stored struct {
	text  string
	stype string // "" for Avro
}

// New returns an empty registry.
func New() *Registry {
	r := &Registry{byText: map[string]int{}, subjects: map[string][]int{}, mux: http.NewServeMux()}
	r.mux.HandleFunc("POST /subjects/{subject}/versions", r.register)
	r.mux.HandleFunc("GET /subjects", r.listSubjects)
	r.mux.HandleFunc("GET /subjects/{subject}/versions", r.listVersions)
	r.mux.HandleFunc("GET /subjects/{subject}/versions/{version}", r.version)
	r.mux.HandleFunc("GET /schemas/ids/{id}", r.byID)
	return r
}

// ServeHTTP implements http.Handler.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) { r.mux.ServeHTTP(w, req) }

// Register adds schema text (stype "" or "AVRO" for Avro, "PROTOBUF",
// "JSON") under subject and returns its id and version.
func (r *Registry) Register(subject, stype, text string) (id, version int) {
	if strings.EqualFold(stype, "AVRO") {
		stype = ""
	}
	stype = strings.ToUpper(stype)
	r.mu.Lock()
	defer r.mu.Unlock()
	key := stype + "\x00" + text
	id, ok := r.byText[key]
	if !ok {
		r.schemas = append(r.schemas, stored{text: text, stype: stype})
		id = len(r.schemas)
		r.byText[key] = id
	}
	vs := r.subjects[subject]
	for i, v := range vs {
		if v == id {
			return id, i + 1
		}
	}
	r.subjects[subject] = append(vs, id)
	return id, len(vs) + 1
}

type apiError struct {
	Code    int    `json:"error_code"`
	Message string `json:"message"`
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, status, code int, format string, args ...any) {
	reply(w, status, apiError{Code: code, Message: fmt.Sprintf(format, args...)})
}

func (r *Registry) register(w http.ResponseWriter, req *http.Request) {
	var body struct {
		Schema     string `json:"schema"`
		SchemaType string `json:"schemaType"`
		References []any  `json:"references"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, req.Body, 1<<20)).Decode(&body); err != nil {
		fail(w, http.StatusUnprocessableEntity, 42201, "invalid schema request: %v", err)
		return
	}
	if strings.TrimSpace(body.Schema) == "" {
		fail(w, http.StatusUnprocessableEntity, 42201, "empty schema")
		return
	}
	if len(body.References) > 0 {
		fail(w, http.StatusUnprocessableEntity, 42201, "schema references are not supported")
		return
	}
	switch strings.ToUpper(body.SchemaType) {
	case "", "AVRO", "PROTOBUF", "JSON":
	default:
		fail(w, http.StatusUnprocessableEntity, 42201, "unknown schema type %q", body.SchemaType)
		return
	}
	id, _ := r.Register(req.PathValue("subject"), body.SchemaType, body.Schema)
	reply(w, http.StatusOK, map[string]int{"id": id})
}

func (r *Registry) listSubjects(w http.ResponseWriter, _ *http.Request) {
	r.mu.Lock()
	out := make([]string, 0, len(r.subjects))
	for s := range r.subjects {
		out = append(out, s)
	}
	r.mu.Unlock()
	sort.Strings(out)
	reply(w, http.StatusOK, out)
}

func (r *Registry) listVersions(w http.ResponseWriter, req *http.Request) {
	subject := req.PathValue("subject")
	r.mu.Lock()
	n := len(r.subjects[subject])
	r.mu.Unlock()
	if n == 0 {
		fail(w, http.StatusNotFound, 40401, "subject %q not found", subject)
		return
	}
	out := make([]int, n)
	for i := range out {
		out[i] = i + 1
	}
	reply(w, http.StatusOK, out)
}

type subjectSchema struct {
	Subject    string `json:"subject"`
	Version    int    `json:"version"`
	ID         int    `json:"id"`
	SchemaType string `json:"schemaType,omitempty"`
	Schema     string `json:"schema"`
}

func (r *Registry) version(w http.ResponseWriter, req *http.Request) {
	subject, v := req.PathValue("subject"), req.PathValue("version")
	r.mu.Lock()
	defer r.mu.Unlock()
	vs := r.subjects[subject]
	if len(vs) == 0 {
		fail(w, http.StatusNotFound, 40401, "subject %q not found", subject)
		return
	}
	n := len(vs)
	if v != "latest" && v != "-1" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			fail(w, http.StatusUnprocessableEntity, 42202, "invalid version %q", v)
			return
		}
		if n > len(vs) {
			fail(w, http.StatusNotFound, 40402, "version %d of subject %q not found", n, subject)
			return
		}
	}
	id := vs[n-1]
	s := r.schemas[id-1]
	reply(w, http.StatusOK, subjectSchema{Subject: subject, Version: n, ID: id, SchemaType: s.stype, Schema: s.text})
}

func (r *Registry) byID(w http.ResponseWriter, req *http.Request) {
	id, err := strconv.Atoi(req.PathValue("id"))
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil || id < 1 || id > len(r.schemas) {
		fail(w, http.StatusNotFound, 40403, "schema %s not found", req.PathValue("id"))
		return
	}
	s := r.schemas[id-1]
	reply(w, http.StatusOK, struct {
		SchemaType string `json:"schemaType,omitempty"`
		Schema     string `json:"schema"`
	}{s.stype, s.text})
}
