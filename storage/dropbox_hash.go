package storage

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
)

// dropboxBlockSize is the block size of Dropbox's content_hash.
const dropboxBlockSize = 4 << 20

// dropboxHasher computes Dropbox's content_hash while data streams through
// it: the SHA-256 of the concatenated SHA-256 digests of each 4 MiB block
// (the last block may be shorter; no data gives SHA-256 of nothing). It
// hashes blocks as they arrive, so it never holds a block in memory.
type dropboxHasher struct {
	block   hash.Hash // digest of the current block
	inBlock int       // bytes in the current block
	overall hash.Hash // digest of the block digests so far
}

func newDropboxHasher() *dropboxHasher {
	return &dropboxHasher{block: sha256.New(), overall: sha256.New()}
}

func (h *dropboxHasher) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		take := min(dropboxBlockSize-h.inBlock, len(p))
		h.block.Write(p[:take])
		h.inBlock += take
		p = p[take:]
		if h.inBlock == dropboxBlockSize {
			h.overall.Write(h.block.Sum(nil))
			h.block.Reset()
			h.inBlock = 0
		}
	}
	return n, nil
}

// Hex returns the content_hash of everything written, as Dropbox spells
// it. It closes the last block, so nothing may be written after it.
func (h *dropboxHasher) Hex() string {
	if h.inBlock > 0 {
		h.overall.Write(h.block.Sum(nil))
		h.block.Reset()
		h.inBlock = 0
	}
	return hex.EncodeToString(h.overall.Sum(nil))
}
