package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"filippo.io/age"

	"github.com/summoner-bot/summoner/config"
	"github.com/summoner-bot/summoner/storage"
)

// newRepository builds the backup repository from the config; it is nil
// when no destination is configured.
func newRepository(cfg config.Config, log *slog.Logger) (*storage.Repository, error) {
	b := cfg.Backups
	if len(b.Destinations) == 0 {
		return nil, nil
	}
	var (
		backends []storage.Backend
		names    []string // what everyone sees of a destination
	)
	for i, d := range b.Destinations {
		be, err := newBackend(d)
		if err != nil {
			return nil, &configError{msg: fmt.Sprintf("backups.destinations[%d] (%s): %v", i, d.Name, err)}
		}
		backends = append(backends, &storage.Retrying{Backend: be})
		names = append(names, d.Name)
	}
	var ids []age.Identity
	if f := b.Encryption.IdentityFile; f != "" {
		fh, err := os.Open(f)
		if err != nil {
			return nil, &configError{msg: fmt.Sprintf("backups.encryption.identity_file: %v", err)}
		}
		defer fh.Close()
		if ids, err = age.ParseIdentities(fh); err != nil {
			return nil, &configError{msg: fmt.Sprintf("backups.encryption.identity_file %s: %v", f, err)}
		}
	}
	repo, err := storage.NewRepository(storage.Options{
		Backends: backends, Names: names, Recipients: b.Encryption.Recipients, Identities: ids,
		Retention: storage.Retention{KeepLast: b.Retention.KeepLast, Daily: b.Retention.Daily, Weekly: b.Retention.Weekly, Monthly: b.Retention.Monthly},
		Version:   versionString(), VerifyCopies: b.VerifyCopies, Logger: log,
		VerifyLog: filepath.Join(filepath.Dir(cfg.Docker.StateDir), "backups-verified.json"),
	})
	if err != nil {
		return nil, &configError{msg: "backups: " + err.Error()}
	}
	return repo, nil
}

func newBackend(d config.Destination) (storage.Backend, error) {
	switch {
	case d.Local != nil:
		return &storage.Local{Root: d.Local.Path}, nil
	case d.SFTP != nil:
		return storage.NewSFTP(storage.SFTPConfig{
			Addr: d.SFTP.Addr, User: d.SFTP.User, KeyFile: d.SFTP.KeyFile,
			KnownHostsFile: d.SFTP.KnownHosts, Root: d.SFTP.Root, DialTimeout: 15 * time.Second,
		})
	case d.Dropbox != nil:
		return storage.NewDropbox(storage.DropboxConfig{
			AppKey: d.Dropbox.AppKey, AppSecret: d.Dropbox.AppSecret.Reveal(),
			RefreshToken: d.Dropbox.RefreshToken.Reveal(), Root: d.Dropbox.Root,
		})
	}
	return nil, fmt.Errorf("no local, sftp or dropbox settings")
}
