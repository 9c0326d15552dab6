package kafka

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Config holds connector defaults injected by the program (not read from
// SQL). The zero value is usable.
type Config struct {
	// Brokers are the bootstrap brokers ("host:port") used by streams
	// that set no brokers option, e.g. the in-process broker of
	// `ferris dev`. When empty, the KAFKA_BROKERS environment variable
	// (comma-separated) is used.
	Brokers []string
	// AutoCreateTopics lets clients ask the broker to create a topic on
	// first use (the broker must allow it), as `ferris dev` does; otherwise
	// reading a missing topic is an error.
	AutoCreateTopics bool
	// SchemaRegistry is the schema registry URL of streams with format
	// avro that set no schema_registry option, e.g. the one of `ferris dev`.
	SchemaRegistry string
}

// ClientOptionNames are the WITH options ClientOptions reads; sources and
// sinks add them to the options they accept.
var ClientOptionNames = []string{
	"brokers",
	"security_protocol", "sasl_mechanism", "sasl_username", "sasl_password",
	"ssl_ca_location", "ssl_certificate_location", "ssl_key_location", "ssl_skip_verify",
}

// ClientOptions turns the connection options of a Kafka stream or sink into
// franz-go client options: the seed brokers and the security settings.
// what names the connector in errors, e.g. `kafka source "trades"`.
//
// Brokers come from the option brokers (comma-separated host:port), else
// cfg.Brokers, else the environment variable KAFKA_BROKERS; with none of
// them it is an error.
//
// security_protocol is plaintext (default), ssl, sasl_plaintext or
// sasl_ssl. With sasl_*, sasl_mechanism (PLAIN, SCRAM-SHA-256 or
// SCRAM-SHA-512; default PLAIN), sasl_username and sasl_password are
// required. With ssl or sasl_ssl, ssl_ca_location (PEM file of trusted CAs;
// default: the system pool), ssl_certificate_location and ssl_key_location
// (PEM client certificate and key, both or neither) and ssl_skip_verify
// (default false) apply. SASL options without a SASL protocol, or SSL
// options without an SSL protocol, are errors rather than silently
// ignored. The files are read now; a relative path is relative to baseDir
// (the pipeline file's folder; the working directory when empty).
func ClientOptions(cfg Config, what, baseDir string, o arrowexec.Options) ([]kgo.Opt, error) {
	errorf := func(format string, args ...any) error {
		return fmt.Errorf("%s: "+format, append([]any{what}, args...)...)
	}
	brokers := splitList(o["brokers"])
	if len(brokers) == 0 {
		brokers = cfg.Brokers
	}
	if len(brokers) == 0 {
		brokers = splitList(os.Getenv("KAFKA_BROKERS"))
	}
	if len(brokers) == 0 {
		return nil, errorf("no Kafka brokers: set the option brokers = 'host:port,...' or the environment variable KAFKA_BROKERS")
	}
	opts := []kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ClientID("ferrisstreams")}
	if cfg.AutoCreateTopics {
		opts = append(opts, kgo.AllowAutoTopicCreation())
	}

	proto := strings.ToLower(o["security_protocol"])
	var useTLS, useSASL bool
	switch proto {
	case "", "plaintext":
	case "ssl":
		useTLS = true
	case "sasl_plaintext":
		useSASL = true
	case "sasl_ssl":
		useTLS, useSASL = true, true
	default:
		return nil, errorf("option security_protocol: expected plaintext, ssl, sasl_plaintext or sasl_ssl, found %q", o["security_protocol"])
	}

	if useSASL {
		mech, err := saslMechanism(o)
		if err != nil {
			return nil, errorf("%w", err)
		}
		opts = append(opts, kgo.SASL(mech))
	} else {
		for _, k := range []string{"sasl_mechanism", "sasl_username", "sasl_password"} {
			if o[k] != "" {
				return nil, errorf("option %s needs security_protocol sasl_plaintext or sasl_ssl", k)
			}
		}
	}

	if useTLS {
		tc, err := tlsConfig(o, baseDir, "")
		if err != nil {
			return nil, errorf("%w", err)
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	} else {
		for _, k := range []string{"ssl_ca_location", "ssl_certificate_location", "ssl_key_location", "ssl_skip_verify"} {
			if o[k] != "" {
				return nil, errorf("option %s needs security_protocol ssl or sasl_ssl", k)
			}
		}
	}
	return opts, nil
}

func saslMechanism(o arrowexec.Options) (sasl.Mechanism, error) {
	user, pass := o["sasl_username"], o["sasl_password"]
	if user == "" || pass == "" {
		return nil, errors.New("options sasl_username and sasl_password are required with SASL")
	}
	switch m := strings.ToUpper(o["sasl_mechanism"]); m {
	case "", "PLAIN":
		return plain.Auth{User: user, Pass: pass}.AsMechanism(), nil
	case "SCRAM-SHA-256":
		return scram.Auth{User: user, Pass: pass}.AsSha256Mechanism(), nil
	case "SCRAM-SHA-512":
		return scram.Auth{User: user, Pass: pass}.AsSha512Mechanism(), nil
	default:
		return nil, fmt.Errorf("option sasl_mechanism: expected PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, found %q", o["sasl_mechanism"])
	}
}

// tlsConfig reads the options prefix+"ssl_ca_location",
// prefix+"ssl_certificate_location", prefix+"ssl_key_location" and
// prefix+"ssl_skip_verify".
func tlsConfig(o arrowexec.Options, baseDir, prefix string) (*tls.Config, error) {
	path := func(p string) string {
		if p == "" || filepath.IsAbs(p) || baseDir == "" {
			return p
		}
		return filepath.Join(baseDir, p)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if v := o[prefix+"ssl_skip_verify"]; v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("option %sssl_skip_verify: expected true or false, found %q", prefix, v)
		}
		tc.InsecureSkipVerify = b
	}
	if path := path(o[prefix+"ssl_ca_location"]); path != "" {
		pem, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("option %sssl_ca_location: %w", prefix, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("option %sssl_ca_location: no PEM certificate in %s", prefix, path)
		}
		tc.RootCAs = pool
	}
	certPath, keyPath := path(o[prefix+"ssl_certificate_location"]), path(o[prefix+"ssl_key_location"])
	if (certPath == "") != (keyPath == "") {
		return nil, fmt.Errorf("options %sssl_certificate_location and %sssl_key_location go together", prefix, prefix)
	}
	if certPath != "" {
		cert, err := tls.LoadX509KeyPair(certPath, keyPath)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// splitList splits a comma-separated list, trimming spaces and dropping
// empty items.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
