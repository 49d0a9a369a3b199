package storage

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/dropbox/dropbox-sdk-go-unofficial/v6/dropbox/contenthash"
)

// Known values from the SDK's own tests, which it checks against Dropbox's
// reference hasher (github.com/dropbox/dropbox-api-content-hasher).
func TestDropboxHashKnownValues(t *testing.T) {
	for data, want := range map[string]string{
		"":            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"a":           "bf5d3affb73efd2ec6c36ad3112dd933efed63c4e1cbffcfa88e2759c144f2d8",
		"abc":         "4f8b42c22dd3729b519ba6f68d2da7cc5b2d606d05daed5ad5128cc03e6c6358",
		"hello world": "bc62d4b80d9e36da29c16c5d4d9f11731f36052c72401a76c23c0fb5a9b74423",
	} {
		h := newDropboxHasher()
		if _, err := io.WriteString(h, data); err != nil {
			t.Fatal(err)
		}
		if got := h.Hex(); got != want {
			t.Errorf("hash(%q) = %s, want %s", data, got, want)
		}
	}
}

// plainDropboxHash is the algorithm as Dropbox describes it, on data held
// whole in memory.
func plainDropboxHash(data []byte) string {
	var digests []byte
	for start := 0; start < len(data); start += dropboxBlockSize {
		block := sha256.Sum256(data[start:min(start+dropboxBlockSize, len(data))])
		digests = append(digests, block[:]...)
	}
	sum := sha256.Sum256(digests)
	return hex.EncodeToString(sum[:])
}

// Sizes around block edges, written in uneven pieces, against the plain
// algorithm and the SDK's hasher.
func TestDropboxHashMatchesReferences(t *testing.T) {
	const B = dropboxBlockSize
	data := make([]byte, 3*B+12345)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	for _, size := range []int{0, 1, B - 1, B, B + 1, 2 * B, 2*B + 7, 3*B + 12345} {
		for _, piece := range []int{1 << 20, 999_983, B, 3 * B} {
			t.Run(fmt.Sprintf("%d/%d", size, piece), func(t *testing.T) {
				h := newDropboxHasher()
				for rest := data[:size]; len(rest) > 0; {
					n := min(piece, len(rest))
					if _, err := h.Write(rest[:n]); err != nil {
						t.Fatal(err)
					}
					rest = rest[n:]
				}
				got := h.Hex()
				if want := plainDropboxHash(data[:size]); got != want {
					t.Fatalf("got %s, plain implementation says %s", got, want)
				}
				sdk, _ := contenthash.Compute(strings.NewReader(string(data[:size])))
				if got != sdk {
					t.Fatalf("got %s, SDK says %s", got, sdk)
				}
			})
		}
	}
}
