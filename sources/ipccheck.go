package sources

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	flatbuffers "github.com/google/flatbuffers/go"
)

// The Arrow IPC reader sizes slices by vector lengths read from the file's
// flatbuffer metadata (fields, children, custom metadata) without checking
// them against the buffer, and recurses into child fields without a bound:
// a corrupt length asks for terabytes and a corrupt offset loops, both fatal
// rather than a panic it could recover. checkIPCSchema walks the schema
// first and refuses such metadata. Slots are the field ids of
// format/Schema.fbs, File.fbs and Message.fbs of the Arrow format.
const (
	maxFieldDepth = 64

	footerSchema = 1 // Footer.schema
	footerMeta   = 4 // Footer.custom_metadata

	messageHeaderType = 1 // Message.header_type
	messageHeader     = 2 // Message.header
	messageMeta       = 4 // Message.custom_metadata
	headerSchema      = 1 // MessageHeader.Schema

	schemaFields = 1 // Schema.fields
	schemaMeta   = 2 // Schema.custom_metadata

	fieldTypeType = 2  // Field.type_type
	fieldType     = 3  // Field.type
	fieldChildren = 5  // Field.children
	fieldMeta     = 6  // Field.custom_metadata
	typeUnion     = 14 // Type.Union
	unionTypeIDs  = 1  // Union.typeIds
)

var errIPCMetadata = errors.New("invalid Arrow IPC metadata")

// checkIPCFile checks the footer of an Arrow IPC file ("ARROW1" magic).
func checkIPCFile(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	var tail [10]byte // footer length, then the magic
	if fi.Size() < 16 {
		return fmt.Errorf("%w: file too short", errIPCMetadata)
	}
	if _, err := f.ReadAt(tail[:], fi.Size()-10); err != nil {
		return err
	}
	n := int64(int32(binary.LittleEndian.Uint32(tail[:4])))
	if n <= 0 || n > fi.Size()-10 {
		return fmt.Errorf("%w: footer length %d", errIPCMetadata, n)
	}
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, fi.Size()-10-n); err != nil {
		return err
	}
	return checkFB(buf, func(root flatbuffers.Table) error {
		if err := checkVector(root, footerMeta, 4); err != nil {
			return err
		}
		schema, ok := table(root, footerSchema)
		if !ok {
			return nil
		}
		return checkSchema(schema)
	})
}

// checkIPCStream checks the schema message that starts an Arrow IPC
// stream, leaving f where it was.
func checkIPCStream(f *os.File) error {
	pos, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return err
	}
	defer f.Seek(pos, io.SeekStart)
	var head [8]byte
	if _, err := io.ReadFull(f, head[:4]); err != nil {
		return nil // the reader reports it
	}
	n := int64(int32(binary.LittleEndian.Uint32(head[:4])))
	if uint32(n) == 0xFFFFFFFF { // continuation marker, then the length
		if _, err := io.ReadFull(f, head[4:]); err != nil {
			return nil
		}
		n = int64(int32(binary.LittleEndian.Uint32(head[4:])))
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if n < 4 || n > fi.Size() {
		return nil // the reader refuses the length itself
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(f, buf); err != nil {
		return nil
	}
	return checkFB(buf, func(root flatbuffers.Table) error {
		if err := checkVector(root, messageMeta, 4); err != nil {
			return err
		}
		if o := root.Offset(slot(messageHeaderType)); o == 0 || root.GetByte(flatbuffers.UOffsetT(o)+root.Pos) != headerSchema {
			return nil
		}
		schema, ok := table(root, messageHeader)
		if !ok {
			return nil
		}
		return checkSchema(schema)
	})
}

// checkFB runs check on the root table of buf; a read out of bounds is an
// error.
func checkFB(buf []byte, check func(flatbuffers.Table) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", errIPCMetadata, r)
		}
	}()
	if len(buf) < 4 {
		return fmt.Errorf("%w: %d bytes", errIPCMetadata, len(buf))
	}
	return check(flatbuffers.Table{Bytes: buf, Pos: flatbuffers.GetUOffsetT(buf)})
}

func checkSchema(schema flatbuffers.Table) error {
	if err := checkVector(schema, schemaMeta, 4); err != nil {
		return err
	}
	return checkFields(schema, schemaFields, 0)
}

// checkFields checks the vector of Field tables in slot s of t, and their
// children, to maxFieldDepth.
func checkFields(t flatbuffers.Table, s int, depth int) error {
	if depth > maxFieldDepth {
		return fmt.Errorf("%w: fields nested deeper than %d", errIPCMetadata, maxFieldDepth)
	}
	if err := checkVector(t, s, 4); err != nil {
		return err
	}
	o := t.Offset(slot(s))
	if o == 0 {
		return nil
	}
	start := t.Vector(flatbuffers.UOffsetT(o))
	for i := range t.VectorLen(flatbuffers.UOffsetT(o)) {
		at := start + flatbuffers.UOffsetT(i)*4
		field := flatbuffers.Table{Bytes: t.Bytes, Pos: t.Indirect(at)}
		if err := checkVector(field, fieldMeta, 4); err != nil {
			return err
		}
		if o := field.Offset(slot(fieldTypeType)); o != 0 && field.GetByte(flatbuffers.UOffsetT(o)+field.Pos) == typeUnion {
			if union, ok := table(field, fieldType); ok {
				if err := checkVector(union, unionTypeIDs, 4); err != nil {
					return err
				}
			}
		}
		if err := checkFields(field, fieldChildren, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// checkVector checks that the vector in slot s of t, if any, fits in the
// buffer with elements of size bytes.
func checkVector(t flatbuffers.Table, s int, size int) error {
	o := t.Offset(slot(s))
	if o == 0 {
		return nil
	}
	start := int64(t.Vector(flatbuffers.UOffsetT(o)))
	n := int64(t.VectorLen(flatbuffers.UOffsetT(o)))
	if n < 0 || start+n*int64(size) > int64(len(t.Bytes)) {
		return fmt.Errorf("%w: a vector of %d elements in %d bytes", errIPCMetadata, n, len(t.Bytes))
	}
	return nil
}

// table returns the table in slot s of t.
func table(t flatbuffers.Table, s int) (flatbuffers.Table, bool) {
	o := t.Offset(slot(s))
	if o == 0 {
		return flatbuffers.Table{}, false
	}
	return flatbuffers.Table{Bytes: t.Bytes, Pos: t.Indirect(flatbuffers.UOffsetT(o) + t.Pos)}, true
}

// slot is the vtable offset of field id s.
func slot(s int) flatbuffers.VOffsetT { return flatbuffers.VOffsetT(4 + 2*s) }
