package storage

import (
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/zstd"
)

// A zstd stream compresses on one core; cut into independent frames,
// several compress at once. Decoders read concatenated frames as one
// stream, and with 2 MiB frames the ratio is all but unchanged.
const frameSize = 2 << 20

// compressFrames reads src in frames, compresses them in parallel and
// writes them to w in order. Memory stays bounded: at most workers+1
// frames are in flight.
func compressFrames(w io.Writer, src io.Reader) error {
	workers := max(2, runtime.GOMAXPROCS(0))
	// EncodeAll runs at most "concurrency" frames at once.
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(workers), zstd.WithWindowSize(frameSize))
	if err != nil {
		return err
	}
	defer enc.Close()
	type frame struct{ out chan *[]byte }
	order := make(chan frame, workers)
	slots := make(chan struct{}, workers+1)
	// Pointers in the pools: a slice put in an interface is allocated anew
	// at each Put, which is what the pools are there to avoid.
	inPool := sync.Pool{New: func() any { b := make([]byte, frameSize); return &b }}
	outPool := sync.Pool{New: func() any { b := make([]byte, 0, frameSize); return &b }}

	var writeErr atomic.Pointer[error]
	written := make(chan struct{})
	go func() { // writes frames in the order they were read
		defer close(written)
		for f := range order {
			out := <-f.out
			if writeErr.Load() == nil {
				if _, err := w.Write(*out); err != nil {
					writeErr.Store(&err)
				}
			}
			*out = (*out)[:0]
			outPool.Put(out)
			<-slots
		}
	}()

	var readErr error
	for writeErr.Load() == nil {
		slots <- struct{}{}
		in := inPool.Get().(*[]byte)
		n, err := io.ReadFull(src, *in)
		if n > 0 {
			f := frame{out: make(chan *[]byte, 1)}
			order <- f
			go func() {
				out := outPool.Get().(*[]byte)
				// EncodeAll may grow the buffer: keep the grown one.
				*out = enc.EncodeAll((*in)[:n], *out)
				f.out <- out
				inPool.Put(in)
			}()
		} else {
			<-slots
			inPool.Put(in)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			readErr = err
			break
		}
	}
	close(order)
	<-written
	if readErr != nil {
		return readErr
	}
	if err := writeErr.Load(); err != nil {
		return fmt.Errorf("writing: %w", *err)
	}
	return nil
}
