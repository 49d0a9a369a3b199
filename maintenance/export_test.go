package maintenance

import (
	"context"
	"io"

	"github.com/summoner-bot/summoner/storage"
)

// ScanArchive gives tests the tally a cold backup records for an archive.
func ScanArchive(ctx context.Context, r io.Reader) (storage.Tally, error) {
	a, err := scanArchive(ctx, r)
	if err != nil {
		return storage.Tally{}, err
	}
	return a.record(), nil
}
