package kafka

import (
	"encoding/base64"
	"encoding/binary"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
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
