// Package maintenance keeps minions' data safe: hot dumps of their
// databases streamed into the backup repository, and restores that first
// store a safety dump and put it back if anything fails.
//
// Dump tools run inside the database container through the Engine API's
// exec. It must never put a credential on a command line (the host's or
// the container's ps shows it), write a dump to a temporary file, or let
// a dump that did not end properly reach the repository.
package maintenance
