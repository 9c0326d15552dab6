package arrowexec

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/klauspost/compress/zstd"
)

// On disk, Dir holds one directory per complete checkpoint,
// chk-<id, 10 digits>, with a manifest.json and state.arrows.zst: every
// state table as an Arrow IPC stream, one after the other (the manifest
// gives each one's offset and length in the decompressed bytes), the whole
// compressed as one zstd stream (klauspost/compress). One file and one
// encoder, however many tables: two file syncs per checkpoint, and none of
// the cost of a zstd encoder per table that IPC's own buffer compression
// would have. A checkpoint is written
// into a temporary directory, synced, and then renamed into place, so a
// chk- directory is complete or absent. manifest.json records the SHA-256
// of every table and of its own body: a damaged or truncated checkpoint is
// detected on load and the previous one used.

const (
	checkpointPrefix = "chk-"
	manifestFile     = "manifest.json"
	stateFile        = "state.arrows.zst"
)

// manifest describes a checkpoint.
type manifest struct {
	ID          int64                    `json:"id"`
	Fingerprint string                   `json:"fingerprint"` // of the topology's shape
	Created     time.Time                `json:"created"`
	States      map[string]manifestState `json:"states"`
	// Sinks are each query's sink positions (ResumableSink.Committed;
	// -1 for sinks that cannot resume).
	Sinks map[string][]int64 `json:"sinks"`
	// Finished are the queries that had ended cleanly: they are not run
	// again.
	Finished []string `json:"finished,omitempty"`
	// StateSHA256 and StateBytes check stateFile as written.
	StateSHA256 string `json:"state_sha256,omitempty"`
	StateBytes  int64  `json:"state_bytes,omitempty"`
}

// manifestState is one operator's or source's state.
type manifestState struct {
	Values map[string]string        `json:"values,omitempty"`
	Tables map[string]manifestTable `json:"tables,omitempty"`
}

// manifestTable locates one table in stateFile, decompressed.
type manifestTable struct {
	Offset int64  `json:"offset"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// sealed is manifest.json: the manifest and the checksum of its bytes.
type sealed struct {
	SHA256   string          `json:"sha256"`
	Manifest json.RawMessage `json:"manifest"`
}

func (m *manifest) finished(query string) bool { return slices.Contains(m.Finished, query) }

func checkpointDir(dir string, id int64) string {
	return filepath.Join(dir, fmt.Sprintf("%s%010d", checkpointPrefix, id))
}

// writeCheckpoint writes m with states into dir atomically, keeps the
// newest keep checkpoints and returns the bytes written. It gives up when
// ctx ends.
func writeCheckpoint(ctx context.Context, dir string, m *manifest, states map[string]*StateWriter, keep int) (int64, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	tmp, err := os.MkdirTemp(dir, ".tmp-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(tmp) // after the rename: nothing
	data, err := os.Create(filepath.Join(tmp, stateFile))
	if err != nil {
		return 0, err
	}
	defer data.Close()
	bw := bufio.NewWriterSize(data, 1<<20)
	fileSum := sha256.New()
	zw, err := zstd.NewWriter(io.MultiWriter(bw, fileSum), zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		return 0, err
	}
	defer zw.Close()
	var total int64
	m.States = map[string]manifestState{}
	keys := make([]string, 0, len(states))
	for k := range states {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		w := states[key]
		ms := manifestState{Values: w.values}
		for _, name := range w.tableNames() {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
			if ms.Tables == nil {
				ms.Tables = map[string]manifestTable{}
			}
			// straight into the compressor, hashed and counted on the way
			sum, n := sha256.New(), &byteCounter{}
			if err := w.encodeTable(io.MultiWriter(zw, sum, n), name); err != nil {
				return 0, fmt.Errorf("%s: table %s: %w", key, name, err)
			}
			ms.Tables[name] = manifestTable{Offset: total, Bytes: n.n, SHA256: hex.EncodeToString(sum.Sum(nil))}
			total += n.n
		}
		m.States[key] = ms
	}
	if err := zw.Close(); err != nil {
		return 0, err
	}
	if err := bw.Flush(); err != nil {
		return 0, err
	}
	if err := data.Sync(); err != nil {
		return 0, err
	}
	if st, err := data.Stat(); err == nil {
		m.StateBytes = st.Size()
	}
	m.StateSHA256 = hex.EncodeToString(fileSum.Sum(nil))
	body, err := json.Marshal(m)
	if err != nil {
		return 0, err
	}
	sum := sha256.Sum256(body)
	out, err := json.Marshal(sealed{SHA256: hex.EncodeToString(sum[:]), Manifest: body})
	if err != nil {
		return 0, err
	}
	if err := writeSynced(filepath.Join(tmp, manifestFile), out); err != nil {
		return 0, err
	}
	total = m.StateBytes + int64(len(out)) // on disk
	if err := syncDir(tmp); err != nil {
		return 0, err
	}
	final := checkpointDir(dir, m.ID)
	_ = os.RemoveAll(final) // a leftover of an earlier run with the same id
	if err := os.Rename(tmp, final); err != nil {
		return 0, err
	}
	if err := syncDir(dir); err != nil {
		return 0, err
	}
	ids, err := listCheckpoints(dir)
	if err != nil {
		return total, err
	}
	for _, id := range ids {
		if id <= m.ID-int64(keep) || id > m.ID { // older ones, and newer leftovers of a lost run
			_ = os.RemoveAll(checkpointDir(dir, id))
		}
	}
	return total, nil
}

// byteCounter counts the bytes written to it.
type byteCounter struct{ n int64 }

func (c *byteCounter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// listCheckpoints returns the ids of the checkpoint directories in dir,
// newest first.
func listCheckpoints(dir string) ([]int64, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ids []int64
	for _, e := range entries {
		name, ok := strings.CutPrefix(e.Name(), checkpointPrefix)
		if !ok || !e.IsDir() {
			continue
		}
		if id, err := strconv.ParseInt(name, 10, 64); err == nil {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] > ids[j] })
	return ids, nil
}

// loadedCheckpoint is a checkpoint read back: its manifest and a reader
// per state.
type loadedCheckpoint struct {
	manifest *manifest
	states   map[string]*StateReader
}

func (l *loadedCheckpoint) release() {
	for _, r := range l.states {
		r.Release()
	}
}

// loadLatestCheckpoint reads the newest checkpoint in dir, of id at most
// newest, that is intact, logging the damaged ones it skips (and a warning
// naming them when every one is damaged); nil when there is none.
func loadLatestCheckpoint(dir string, alloc memory.Allocator, newest int64, logf func(string, ...any)) (*loadedCheckpoint, error) {
	ids, err := listCheckpoints(dir)
	if err != nil {
		return nil, err
	}
	if logf == nil {
		logf = func(string, ...any) {}
	}
	var damaged []int64
	for _, id := range ids {
		if id > newest {
			continue
		}
		ck, err := loadCheckpoint(checkpointDir(dir, id), alloc)
		if err == nil {
			return ck, nil
		}
		damaged = append(damaged, id)
		logf("checkpoint %d is damaged, trying the one before: %v", id, err)
	}
	if len(damaged) > 0 {
		logf("warning: every checkpoint in %s is damaged (%s): starting from scratch", dir, joinIDs(damaged))
	}
	return nil, nil
}

// joinIDs writes ids as "3, 2", the first five and a count of the rest.
func joinIDs(ids []int64) string {
	var s []string
	for i, id := range ids {
		if i == 5 {
			s = append(s, fmt.Sprintf("and %d more", len(ids)-i))
			break
		}
		s = append(s, strconv.FormatInt(id, 10))
	}
	return strings.Join(s, ", ")
}

// loadCheckpoint reads and verifies one checkpoint directory.
func loadCheckpoint(path string, alloc memory.Allocator) (*loadedCheckpoint, error) {
	raw, err := os.ReadFile(filepath.Join(path, manifestFile))
	if err != nil {
		return nil, err
	}
	var s sealed
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", manifestFile, err)
	}
	sum := sha256.Sum256(s.Manifest)
	if hex.EncodeToString(sum[:]) != s.SHA256 {
		return nil, fmt.Errorf("%s: checksum mismatch", manifestFile)
	}
	var m manifest
	if err := json.Unmarshal(s.Manifest, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", manifestFile, err)
	}
	ck := &loadedCheckpoint{manifest: &m, states: map[string]*StateReader{}}
	var all []byte
	if hasTables(&m) {
		if all, err = readStateFile(filepath.Join(path, stateFile), &m); err != nil {
			return nil, err
		}
	}
	for key, ms := range m.States {
		r := &StateReader{values: ms.Values}
		ck.states[key] = r
		for name, t := range ms.Tables {
			if t.Offset < 0 || t.Bytes < 0 || t.Offset+t.Bytes > int64(len(all)) {
				ck.release()
				return nil, fmt.Errorf("%s: %s table %s lies past its end (%d bytes)", stateFile, key, name, len(all))
			}
			data := all[t.Offset : t.Offset+t.Bytes]
			sum := sha256.Sum256(data)
			if int64(len(data)) != t.Bytes || hex.EncodeToString(sum[:]) != t.SHA256 {
				ck.release()
				return nil, fmt.Errorf("%s (%s table %s): checksum mismatch", stateFile, key, name)
			}
			if err := r.decodeTable(alloc, name, bytes.NewReader(data)); err != nil {
				ck.release()
				return nil, fmt.Errorf("%s: %w", key, err)
			}
		}
	}
	return ck, nil
}

// lastIDFile records, in a folder whose checkpoints were removed after a
// complete run, the last checkpoint id used.
const lastIDFile = "last-id"

func writeLastID(dir string, id int64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return writeSynced(filepath.Join(dir, lastIDFile), []byte(strconv.FormatInt(id, 10)))
}

// readLastID returns the id writeLastID recorded (0 when none).
func readLastID(dir string) int64 {
	b, err := os.ReadFile(filepath.Join(dir, lastIDFile))
	if err != nil {
		return 0
	}
	id, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return id
}

// readStateFile checks stateFile against the manifest and decompresses it.
func readStateFile(path string, m *manifest) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(raw)
	if int64(len(raw)) != m.StateBytes || hex.EncodeToString(sum[:]) != m.StateSHA256 {
		return nil, fmt.Errorf("%s: checksum mismatch (%d bytes, %d written)", stateFile, len(raw), m.StateBytes)
	}
	zr, err := zstd.NewReader(nil)
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	all, err := zr.DecodeAll(raw, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", stateFile, err)
	}
	return all, nil
}

func hasTables(m *manifest) bool {
	for _, s := range m.States {
		if len(s.Tables) > 0 {
			return true
		}
	}
	return false
}

// removeCheckpoints deletes every checkpoint in dir.
func removeCheckpoints(dir string) error {
	ids, err := listCheckpoints(dir)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := os.RemoveAll(checkpointDir(dir, id)); err != nil {
			return err
		}
	}
	return nil
}
