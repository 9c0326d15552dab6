package server

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/plan"
	"github.com/ferrisstreams/ferris/plan/ast"
)

// Errors of the confinement of a pipeline's SQL, for errors.Is.
var (
	ErrPathNotAllowed   = errors.New("path not allowed")
	ErrBrokerNotAllowed = errors.New("broker not allowed")
)

// Confinement is what the SQL of pipelines registered with a server may
// reach: files under the data folder or another allowed root, and the
// allowed Kafka brokers. A client of the API is not the local user: it may
// not read /etc/passwd through a file source, nor write beside the server's
// binary through a file sink.
type Confinement struct {
	// Roots are the folders paths may resolve under; relative paths
	// resolve against the first (the data folder).
	Roots []string
	// Brokers are the host:port addresses the option brokers may name;
	// empty: any.
	Brokers []string
}

// isPathOption reports whether a WITH option or setting names a file or
// folder: path, *_path, *_location, *_dir.
func isPathOption(name string) bool {
	return name == "path" || strings.HasSuffix(name, "_path") || strings.HasSuffix(name, "_location") || strings.HasSuffix(name, "_dir")
}

// check returns an error (a *SQLError) naming the option, the value and its
// SQL position for every path of p outside the roots and every broker not
// allowed. Relations in skip (declared and checked by another pipeline) are
// not checked again. Settings equal to the server's own (base) are the
// operator's choice and allowed; those changed by SET are checked at the
// SET statement.
func (c Confinement) check(p *plan.Pipeline, stmts []ast.Statement, base arrowexec.Settings, skip map[string]bool) error {
	var errs []error
	checkOpts := func(pos ast.Pos, opts arrowexec.Options) {
		for _, k := range slices.Sorted(maps.Keys(opts)) {
			if err := c.checkOption(k, opts[k]); err != nil {
				errs = append(errs, &plan.Error{Pos: pos, Msg: err.Error(), Err: err})
			}
		}
	}
	for _, r := range p.Relations {
		if r.Kind != plan.DerivedStream && !skip[r.Name] {
			checkOpts(r.At, r.Options)
		}
	}
	for _, q := range p.Queries {
		opts := arrowexec.Options{}
		maps.Copy(opts, q.Options)
		if q.Sink != nil {
			maps.Copy(opts, q.Sink.Options)
		}
		checkOpts(q.At, opts)
	}
	for _, st := range stmts {
		s, ok := st.(*ast.Set)
		if !ok || !isPathOption(s.Name.Name) {
			continue
		}
		mine, _ := p.Settings.Get(s.Name.Name)
		server, _ := base.Get(s.Name.Name)
		if mine == server {
			continue
		}
		if err := c.checkOption(s.Name.Name, mine); err != nil {
			errs = append(errs, &plan.Error{Pos: s.At, Msg: err.Error(), Err: err})
		}
	}
	if len(errs) > 0 {
		return newSQLError(errors.Join(errs...))
	}
	return nil
}

// checkOption checks one option's value: a path must stay under a root,
// brokers must be allowed.
func (c Confinement) checkOption(name, value string) error {
	switch {
	case value == "":
		return nil
	case name == "brokers":
		if len(c.Brokers) == 0 {
			return nil
		}
		for _, b := range strings.Split(value, ",") {
			if b = strings.TrimSpace(b); b != "" && !slices.Contains(c.Brokers, b) {
				return fmt.Errorf("option brokers: %q is not an allowed broker (--allow-brokers): %w", b, ErrBrokerNotAllowed)
			}
		}
	case isPathOption(name):
		if _, err := c.Resolve(value); err != nil {
			return fmt.Errorf("option %s: %w", name, err)
		}
	}
	return nil
}

// Resolve returns the absolute path of a path of SQL (relative to the first
// root), or an error wrapping ErrPathNotAllowed when it is not under a
// root. Symbolic links are followed as far as the path exists, so a link
// inside a root pointing outside it is refused.
func (c Confinement) Resolve(path string) (string, error) {
	if len(c.Roots) == 0 {
		return "", fmt.Errorf("%q: no data folder: %w", path, ErrPathNotAllowed)
	}
	abs := path
	if !filepath.IsAbs(abs) {
		abs = filepath.Join(c.Roots[0], abs)
	}
	real, err := evalExisting(filepath.Clean(abs))
	if err != nil {
		return "", fmt.Errorf("%q: %w", path, err)
	}
	for _, root := range c.Roots {
		r, err := evalExisting(filepath.Clean(root))
		if err == nil && within(r, real) {
			return abs, nil
		}
	}
	return "", fmt.Errorf("%q is outside the data folder (--data-dir; --allow-path adds folders): %w", path, ErrPathNotAllowed)
}

// evalExisting resolves the symbolic links of the longest existing prefix
// of the absolute, clean path and appends the rest.
func evalExisting(path string) (string, error) {
	rest := ""
	for {
		real, err := filepath.EvalSymlinks(path)
		if err == nil {
			return filepath.Join(real, rest), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		if _, lerr := os.Lstat(path); lerr == nil {
			// It exists but does not resolve: a link to nowhere, which a
			// sink would follow when it creates the file.
			return "", fmt.Errorf("%s is a symbolic link to a missing file: %w", path, ErrPathNotAllowed)
		}
		parent := filepath.Dir(path)
		if parent == path {
			return filepath.Join(path, rest), nil
		}
		rest = filepath.Join(filepath.Base(path), rest)
		path = parent
	}
}

// within reports whether path is root or under it (both absolute, clean).
func within(root, path string) bool {
	rel, err := filepath.Rel(root, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(os.PathSeparator)) && !filepath.IsAbs(rel)
}
