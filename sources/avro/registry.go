package avro

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"

	"github.com/twmb/franz-go/pkg/sr"
)

// RegistryClient is a Registry backed by a Confluent-compatible schema
// registry over HTTP (franz-go's sr client). It is safe for concurrent use.
type RegistryClient struct {
	cl *sr.Client
}

// NewRegistryClient returns a client of the registry at url (one URL, or
// several separated by commas, tried in order); user and password, when
// user is set, are sent as HTTP basic authentication; tc, when not nil,
// configures TLS (https URLs otherwise trust the system's roots).
func NewRegistryClient(urls []string, user, password string, tc *tls.Config) (*RegistryClient, error) {
	opts := []sr.ClientOpt{sr.URLs(urls...)}
	if user != "" {
		opts = append(opts, sr.BasicAuth(user, password))
	}
	if tc != nil {
		opts = append(opts, sr.DialTLSConfig(tc))
	}
	cl, err := sr.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("schema registry: %w", err)
	}
	return &RegistryClient{cl: cl}, nil
}

// Schema implements Registry: GET /schemas/ids/{id}. A schema the registry
// does not have is ErrSchemaNotFound.
func (r *RegistryClient) Schema(ctx context.Context, id int) (string, error) {
	s, err := r.cl.SchemaByID(ctx, id)
	if err != nil {
		return "", notFound(err)
	}
	if s.Type != sr.TypeAvro {
		return "", fmt.Errorf("writer schema id %d is %s, not Avro: %w", id, s.Type, ErrSchemaNotFound)
	}
	return s.Schema, nil
}

// Latest returns the text of the latest version of subject.
func (r *RegistryClient) Latest(ctx context.Context, subject string) (string, error) {
	s, err := r.cl.SchemaByVersion(ctx, subject, -1)
	if err != nil {
		return "", fmt.Errorf("latest schema of subject %s: %w", subject, notFound(err))
	}
	return s.Schema.Schema, nil
}

// Register registers an Avro schema under subject (POST
// /subjects/{subject}/versions) and returns its id; a schema registered
// before keeps its id.
func (r *RegistryClient) Register(ctx context.Context, subject, text string) (int, error) {
	id, err := r.cl.RegisterSchema(ctx, subject, sr.Schema{Schema: text}, -1, -1)
	if err != nil {
		return 0, fmt.Errorf("register schema under subject %s: %w", subject, err)
	}
	return id, nil
}

func notFound(err error) error {
	var re *sr.ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusNotFound {
		return fmt.Errorf("%w: %v", ErrSchemaNotFound, err)
	}
	return err
}
