package schemaregistry

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"
)

// TestRESTThroughClient drives the registry with franz-go's sr client, as
// producers and consumers do: ids are shared by equal texts, versions
// count per subject, "latest" is the newest, and unknown subjects,
// versions and ids are Confluent's 404 errors.
func TestRESTThroughClient(t *testing.T) {
	srv := httptest.NewServer(New())
	defer srv.Close()
	cl, err := sr.NewClient(sr.URLs(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const a, b = `{"type":"record","name":"A","fields":[]}`, `"string"`
	register := func(subject, text string, typ sr.SchemaType) int {
		t.Helper()
		id, err := cl.RegisterSchema(ctx, subject, sr.Schema{Schema: text, Type: typ}, -1, -1)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	idA := register("x-value", a, sr.TypeAvro)
	idB := register("x-value", b, sr.TypeAvro)
	if again := register("x-value", a, sr.TypeAvro); again != idA {
		t.Errorf("re-registering gave id %d, want %d", again, idA)
	}
	if other := register("y-value", a, sr.TypeAvro); other != idA {
		t.Errorf("same text under another subject gave id %d, want %d", other, idA)
	}
	if proto := register("p-value", a, sr.TypeProtobuf); proto == idA || proto == idB {
		t.Errorf("the same text as Protobuf shares id %d", proto)
	}
	if idA == idB {
		t.Fatalf("two schemas share id %d", idA)
	}

	subjects, err := cl.Subjects(ctx)
	if err != nil || !slices.Equal(subjects, []string{"p-value", "x-value", "y-value"}) {
		t.Fatalf("subjects %v, %v", subjects, err)
	}
	versions, err := cl.SubjectVersions(ctx, "x-value")
	if err != nil || !slices.Equal(versions, []int{1, 2}) {
		t.Fatalf("versions %v, %v", versions, err)
	}
	latest, err := cl.SchemaByVersion(ctx, "x-value", -1)
	if err != nil || latest.Version != 2 || latest.ID != idB || latest.Schema.Schema != b || latest.Subject != "x-value" {
		t.Fatalf("latest %+v, %v", latest, err)
	}
	first, err := cl.SchemaByVersion(ctx, "x-value", 1)
	if err != nil || first.ID != idA || first.Schema.Schema != a {
		t.Fatalf("version 1 %+v, %v", first, err)
	}
	byID, err := cl.SchemaByID(ctx, idA)
	if err != nil || byID.Schema != a || byID.Type != sr.TypeAvro {
		t.Fatalf("by id %+v, %v", byID, err)
	}
	p, err := cl.SchemaByID(ctx, register("p-value", b, sr.TypeProtobuf))
	if err != nil || p.Type != sr.TypeProtobuf {
		t.Fatalf("protobuf by id %+v, %v", p, err)
	}

	for _, c := range []struct {
		call func() error
		code int
	}{
		{func() error { _, err := cl.SchemaByID(ctx, 99); return err }, 40403},
		{func() error { _, err := cl.SubjectVersions(ctx, "nope"); return err }, 40401},
		{func() error { _, err := cl.SchemaByVersion(ctx, "nope", -1); return err }, 40401},
		{func() error { _, err := cl.SchemaByVersion(ctx, "x-value", 3); return err }, 40402},
	} {
		var re *sr.ResponseError
		if err := c.call(); !errors.As(err, &re) || re.StatusCode != http.StatusNotFound || re.ErrorCode != c.code {
			t.Errorf("got %v, want 404 with error code %d", err, c.code)
		}
	}
}
