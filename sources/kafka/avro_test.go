package kafka

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/pem"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
	"github.com/ferrisstreams/ferris/schemaregistry"
	hamba "github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestAvroSource: Avro values fill the payload columns beside the system
// columns; a value that is not Avro is dead-lettered whole (base64) with
// its position; when the registry cannot be reached the source fails
// (naming the record) rather than dead-lettering records it could read.
func TestAvroSource(t *testing.T) {
	reg := schemaregistry.New()
	srv := httptest.NewServer(reg)
	defer srv.Close()
	const text = `{"type":"record","name":"R","fields":[{"name":"id","type":"long"},{"name":"name","type":["null","string"]}]}`
	id, _ := reg.Register("t-value", "", text)
	value := func(v map[string]any) []byte {
		body, err := hamba.Marshal(hamba.MustParse(text), v)
		if err != nil {
			t.Fatal(err)
		}
		return append(binary.BigEndian.AppendUint32([]byte{0}, uint32(id)), body...)
	}
	c := newCluster(t, 1, "t")
	notAvro := []byte(`{"id":3}`)
	produce(t, c,
		&kgo.Record{Topic: "t", Key: []byte("a"), Value: value(map[string]any{"id": int64(1), "name": "x"})},
		&kgo.Record{Topic: "t", Value: notAvro},
		&kgo.Record{Topic: "t", Value: value(map[string]any{"id": int64(-2), "name": nil})},
	)
	schema := arrow.NewSchema([]arrow.Field{
		field("name", sqltypes.Varchar, true), field(OffsetColumn, sqltypes.BigInt, false), field("id", sqltypes.BigInt, false),
		field(KeyColumn, sqltypes.Varchar, true),
	}, nil)
	dl := &recorder{}
	src := newSource(t, c, checkedAlloc(t), schema, dl, "topic", "t", "end_offset", "latest", "format", "avro", "schema_registry", srv.URL)
	defer src.Close()
	open(t, src)
	res, err := drain(t, src, -1)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"x|0|1|a", "null|2|-2|null"}; !slices.Equal(res.rows, want) {
		t.Fatalf("rows %q, want %q", res.rows, want)
	}
	if len(dl.recs) != 1 {
		t.Fatalf("dead letters %+v", dl.recs)
	}
	d := dl.recs[0]
	if raw, _ := base64.StdEncoding.DecodeString(d.Raw); d.RawEncoding != "base64" || string(raw) != string(notAvro) ||
		d.Position != "partition 0 offset 1" || !strings.Contains(d.Reason, "not in the Confluent Avro wire format") {
		t.Fatalf("dead letter %+v", d)
	}

	srv.Close()
	src2 := newSource(t, c, checkedAlloc(t), schema, dl, "topic", "t", "end_offset", "latest", "format", "avro", "schema_registry", srv.URL)
	defer src2.Close()
	open(t, src2)
	_, err = drain(t, src2, -1)
	if err == nil {
		t.Fatal("read without a registry")
	}
	for _, want := range []string{"topic t partition 0 offset 0", "schema registry", "writer schema id 1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if len(dl.recs) != 1 {
		t.Fatalf("records dead-lettered without a registry: %+v", dl.recs[1:])
	}
}

// TestAvroRegistryTLS: the registry is reached over TLS trusting the CA of
// schema_registry_ssl_ca_location (relative to the base folder), and not
// without it.
func TestAvroRegistryTLS(t *testing.T) {
	reg := schemaregistry.New()
	id, _ := reg.Register("t-value", "", `"string"`)
	srv := httptest.NewTLSServer(reg)
	defer srv.Close()
	dir := t.TempDir()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), ca, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cl, err := RegistryClient(srv.URL, arrowexec.Options{"schema_registry_ssl_ca_location": "ca.pem"}, dir)
	if err != nil {
		t.Fatal(err)
	}
	if text, err := cl.Schema(ctx, id); err != nil || text != `"string"` {
		t.Fatalf("schema %q, %v", text, err)
	}
	cl, err = RegistryClient(srv.URL, arrowexec.Options{}, dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Schema(ctx, id); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("without the CA: %v", err)
	}
	if _, err := RegistryClient(srv.URL, arrowexec.Options{"schema_registry_ssl_ca_location": "nope.pem"}, dir); err == nil ||
		!strings.Contains(err.Error(), "option schema_registry_ssl_ca_location") {
		t.Fatalf("missing CA file: %v", err)
	}
}
