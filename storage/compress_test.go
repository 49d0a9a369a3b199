package storage

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// compressFrames' frames, read back as one zstd stream, give the input
// again, in order, across frame edges and with the pools' buffers reused.
func TestCompressFramesRoundTrip(t *testing.T) {
	rng := rand.NewChaCha8([32]byte{7})
	data := make([]byte, 5*frameSize+12345)
	for i := 0; i < len(data); i += 4096 {
		if (i/4096)%3 == 0 { // some of it incompressible, the rest zeros
			_, _ = rng.Read(data[i:min(i+4096, len(data))]) // ChaCha8.Read always fills and returns nil
		}
	}
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	for _, size := range []int{0, 1, frameSize - 1, frameSize, frameSize + 1, len(data)} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			var out bytes.Buffer
			if err := compressFrames(&out, bytes.NewReader(data[:size])); err != nil {
				t.Fatal(err)
			}
			if err := dec.Reset(&out); err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(dec)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data[:size]) {
				t.Fatalf("read back %d bytes that differ from the %d sent", len(got), size)
			}
		})
	}
}

type failingWriter struct{ after int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.after == 0 {
		return 0, errors.New("disk full")
	}
	w.after--
	return len(p), nil
}

// A write that fails stops the reading and is the error returned.
func TestCompressFramesWriteError(t *testing.T) {
	err := compressFrames(&failingWriter{after: 1}, bytes.NewReader(make([]byte, 8*frameSize)))
	if err == nil || err.Error() != "writing: disk full" {
		t.Fatalf("err = %v, want writing: disk full", err)
	}
}
