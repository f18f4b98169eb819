package schema

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrIncompatible: values written with one schema cannot be read as another under the Avro
// specification's schema resolution rules.
var ErrIncompatible = errors.New("schemas do not resolve")

// CheckCompatibility checks that every version of each event type can read values written
// with every other version of it, older or newer, under the Avro specification's schema
// resolution rules: then writers and consumers can be upgraded in either order. Load checks
// only that the current version reads the older ones; a version that drops a field without
// a default, for one, passes Load but fails here, since consumers that still run the older
// version cannot read the new events. The error lists every pair that does not resolve, each
// wrapping ErrIncompatible.
func (c *Catalog) CheckCompatibility() error {
	var errs []error
	for _, in := range c.infos {
		t := c.types[in.Type]
		if in.Version != 1 {
			continue // each type once
		}
		for _, reader := range t.versions {
			for _, writer := range t.versions {
				if reader == writer {
					continue
				}
				if err := resolves(writer.root, reader.root, ""); err != nil {
					errs = append(errs, fmt.Errorf("%s v%d cannot read v%d: %w: %w", in.Type, reader.version, writer.version, ErrIncompatible, err))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// resolves checks that values written with w can be read as r, under the specification's
// rules for the types this package supports: the same type, int promoted to long, records
// of the same (unqualified) name whose reader fields are each in the writer's record and
// resolve or have a default (the writer's other fields are skipped), arrays whose items
// resolve, and unions: every branch the writer may choose must resolve to one of the
// reader's (to the reader's type itself when the reader's is not a union). Logical types
// annotate their type and do not take part.
func resolves(w, r *node, path string) error {
	switch {
	case w.kind == kindUnion && r.kind == kindUnion:
		for _, wb := range w.branches {
			if resolves(wb, r.branches[0], path) != nil && resolves(wb, r.branches[1], path) != nil {
				return problem(path, "the writer's %s has no counterpart in the reader's %s", describe(wb), describe(r))
			}
		}
		return nil
	case w.kind == kindUnion:
		for _, wb := range w.branches {
			if err := resolves(wb, r, path); err != nil {
				return problem(path, "the writer's %s may hold a %s, which the reader's %s cannot", describe(w), describe(wb), describe(r))
			}
		}
		return nil
	case r.kind == kindUnion:
		if resolves(w, r.branches[0], path) != nil && resolves(w, r.branches[1], path) != nil {
			return problem(path, "the writer's %s is in no branch of the reader's %s", describe(w), describe(r))
		}
		return nil
	case w.kind == kindInt && r.kind == kindLong:
		return nil
	case w.kind != r.kind:
		return problem(path, "the writer's %s cannot be read as %s", describe(w), describe(r))
	case r.kind == kindRecord:
		if unqualified(w.name) != unqualified(r.name) {
			return problem(path, "the writer's record %s is not the reader's %s", w.name, r.name)
		}
		for _, f := range r.fields {
			i, ok := w.index[f.name]
			if !ok {
				if !f.hasDefault {
					return problem(join(path, f.name), "not in the writer's schema, and the reader's gives no default")
				}
				continue
			}
			if err := resolves(w.fields[i].typ, f.typ, join(path, f.name)); err != nil {
				return err
			}
		}
		return nil
	case r.kind == kindArray:
		return resolves(w.items, r.items, path+"[]")
	}
	return nil
}

func unqualified(name string) string { return name[strings.LastIndexByte(name, '.')+1:] }

// resolveValue turns v, a value of w in goavro's native form, into the native form of r, for
// schemas that resolves accepts: reader fields the writer lacks take their defaults, fields
// the reader lacks are dropped, an int becomes a long, a long read as timestamp-micros a
// time, and union values are wrapped or unwrapped as the reader's type says.
func resolveValue(w, r *node, v any, path string) (any, error) {
	if w.kind == kindUnion {
		if v == nil {
			if r.kind == kindUnion || r.kind == kindNull {
				return nil, nil
			}
			return nil, problem(path, "null, which the reader's %s cannot hold", describe(r))
		}
		inner, err := unionValue(v, path)
		if err != nil {
			return nil, err
		}
		w, v = w.branches[w.value], inner
	}
	if r.kind == kindUnion {
		if w.kind == kindNull {
			return nil, nil
		}
		x, err := resolveValue(w, r.branches[r.value], v, path)
		if err != nil {
			return nil, err
		}
		return map[string]any{r.key: x}, nil
	}
	switch r.kind {
	case kindRecord:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, problem(path, "record decoded as %T", v)
		}
		out := make(map[string]any, len(r.fields))
		for _, f := range r.fields {
			i, ok := w.index[f.name]
			if !ok {
				out[f.name] = f.def
				continue
			}
			x, err := resolveValue(w.fields[i].typ, f.typ, m[f.name], join(path, f.name))
			if err != nil {
				return nil, err
			}
			out[f.name] = x
		}
		return out, nil
	case kindArray:
		a, ok := v.([]any)
		if !ok {
			return nil, problem(path, "array decoded as %T", v)
		}
		out := make([]any, len(a))
		for i, item := range a {
			x, err := resolveValue(w.items, r.items, item, fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return nil, err
			}
			out[i] = x
		}
		return out, nil
	case kindLong:
		if i, ok := v.(int32); ok {
			v = int64(i)
		}
		if i, ok := v.(int64); ok && r.logical == "timestamp-micros" {
			return time.UnixMicro(i).UTC(), nil
		}
	}
	return v, nil
}

// unionValue returns the value of a non-null union in goavro's native form ({type: value}).
func unionValue(v any, path string) (any, error) {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return nil, problem(path, "union decoded as %T", v)
	}
	for _, x := range m {
		return x, nil
	}
	return nil, nil // not reached
}
