// Package storage keeps backups: a Repository names, hashes, compresses,
// encrypts and verifies them, and writes them to one or more Backends (a
// local folder, a second server over SFTP, Dropbox).
//
// Users trust it with the only copy of their data, so: a backup is written
// in one streaming pass with bounded memory; its manifest is written last,
// and a backup without one does not exist for lists and is removed by
// prune; every copy is verified; an empty or truncated payload is an error,
// never a backup. This package never talks to chat or Docker.
package storage
