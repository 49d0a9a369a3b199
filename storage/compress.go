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
	type frame struct{ out chan []byte }
	order := make(chan frame, workers)
	slots := make(chan struct{}, workers+1)
	pool := sync.Pool{New: func() any { return make([]byte, frameSize) }}
	outPool := sync.Pool{New: func() any { return make([]byte, 0, frameSize) }}

	var writeErr atomic.Pointer[error]
	written := make(chan struct{})
	go func() { // writes frames in the order they were read
		defer close(written)
		for f := range order {
			b := <-f.out
			if writeErr.Load() == nil {
				if _, err := w.Write(b); err != nil {
					writeErr.Store(&err)
				}
			}
			outPool.Put(b[:0])
			<-slots
		}
	}()

	var readErr error
	for {
		if writeErr.Load() != nil {
			break
		}
		slots <- struct{}{}
		in := pool.Get().([]byte)[:frameSize]
		n, err := io.ReadFull(src, in)
		if n > 0 {
			f := frame{out: make(chan []byte, 1)}
			order <- f
			go func(in []byte) {
				f.out <- enc.EncodeAll(in, outPool.Get().([]byte)[:0])
				pool.Put(in[:cap(in)])
			}(in[:n])
		} else {
			<-slots
			pool.Put(in)
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
