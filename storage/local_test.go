package storage_test

import (
	"testing"

	"github.com/summoner-bot/summoner/storage"
	"github.com/summoner-bot/summoner/storage/storagetest"
)

func TestLocalConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Backend { return &storage.Local{Root: t.TempDir()} }, storagetest.Options{})
}
