package maintenance

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"path"
	"strings"

	"github.com/summoner-bot/summoner/storage"
)

// CountEntries is a cold backup's Manifest.Counts key for every entry of
// its archive (folders and links too), beside CountFiles and CountBytes.
const CountEntries = "entries"

// archiveTally is what a cold backup's archive holds, counted and hashed
// as it streams past: at backup time for the manifest, and again by a
// test restore, which compares the two without writing a byte to disk.
type archiveTally struct {
	entries, files, bytes int64
	sum                   hash.Hash
}

func newArchiveTally() *archiveTally { return &archiveTally{sum: sha256.New()} }

// add counts one entry and hashes its header fields, then its content
// (for a regular file), read to the end: a file shorter than its header
// says is an error.
func (a *archiveTally) add(h *tar.Header, content io.Reader) error {
	name := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
	// %q keeps fields apart whatever a name holds.
	fmt.Fprintf(a.sum, "%q %d %o %d %d %q %d %d\n", name, h.Typeflag, h.Mode, h.Uid, h.Gid, h.Linkname, h.Size, h.ModTime.Unix())
	a.entries++
	if h.Typeflag != tar.TypeReg {
		return nil
	}
	n, err := io.Copy(a.sum, content)
	if err != nil {
		return fmt.Errorf("reading %s (%d of its %d bytes): %w", h.Name, n, h.Size, err)
	}
	a.files++
	a.bytes += n
	return nil
}

func (a *archiveTally) digest() string { return hex.EncodeToString(a.sum.Sum(nil)) }

// record is the tally as a manifest keeps it.
func (a *archiveTally) record() storage.Tally {
	return storage.Tally{
		Counts:        map[string]int64{CountFiles: a.files, CountBytes: a.bytes, CountEntries: a.entries},
		EntriesSHA256: a.digest(),
	}
}

// scanArchive reads a whole tar (perhaps gzipped, as older backups were)
// entry by entry and tallies it, writing nothing anywhere: memory stays
// that of one read buffer whatever the archive's size. It fails on an
// entry that cannot be read and on an archive without tar's end marker.
func scanArchive(ctx context.Context, r io.Reader) (*archiveTally, error) {
	br := bufio.NewReader(r)
	var src io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("reading the archive's compression: %w", err)
		}
		defer gz.Close()
		src = gz
	}
	// Go's tar reader takes an archive cut at a file's end for a whole
	// one; tar's own end marker, two zero blocks, tells them apart.
	seen := &endReader{r: src, tail: tailBuffer{max: 1024}}
	tr := tar.NewReader(seen)
	a := newArchiveTally()
	for {
		if err := ctx.Err(); err != nil {
			return a, err
		}
		h, err := tr.Next()
		if err == io.EOF {
			if !seen.ended() {
				return a, fmt.Errorf("the archive was cut short after %d files: it does not end with tar's end-of-archive marker", a.files)
			}
			return a, nil
		}
		if err != nil {
			return a, fmt.Errorf("reading the archive after %d files: %w", a.files, err)
		}
		if err := a.add(h, tr); err != nil {
			return a, err
		}
	}
}

// tallyWriter tallies an archive written through it, on the side: a
// cold backup passes the helper's output through one on its way to the
// repository. It never fails the writer; a tally it could not finish is
// simply not recorded.
type tallyWriter struct {
	pw   *io.PipeWriter
	done chan struct{}
	res  *archiveTally
	err  error
}

func newTallyWriter(ctx context.Context) *tallyWriter {
	pr, pw := io.Pipe()
	t := &tallyWriter{pw: pw, done: make(chan struct{})}
	go func() {
		defer close(t.done)
		t.res, t.err = scanArchive(ctx, pr)
		// Whatever follows the end marker is drained, so writes never block.
		_, _ = io.Copy(io.Discard, pr)
		pr.Close()
	}()
	return t
}

func (t *tallyWriter) Write(p []byte) (int, error) {
	// A write error means the scanner has stopped; the backup goes on.
	_, _ = t.pw.Write(p)
	return len(p), nil
}

// finish ends the stream and gives the tally, or an error if the archive
// could not be read whole.
func (t *tallyWriter) finish(streamErr error) (*archiveTally, error) {
	t.pw.CloseWithError(streamErr)
	<-t.done
	if t.err != nil {
		return nil, t.err
	}
	return t.res, nil
}

// endReader keeps the last bytes the tar reader took, to find the end marker.
type endReader struct {
	r    io.Reader
	n    int64
	tail tailBuffer
}

func (e *endReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	e.n += int64(n)
	e.tail.Write(p[:n])
	return n, err
}

// ended: what was read is whole blocks, the last two of them zero.
func (e *endReader) ended() bool {
	return e.n%512 == 0 && len(e.tail.b) == 1024 && bytes.Count(e.tail.b, []byte{0}) == 1024
}
