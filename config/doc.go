// Package config loads Summoner's configuration: defaults, then the YAML
// file (strict: an unknown key is an error), then SUMMONER_* environment
// variables, then ${VAR} interpolation and *_file secrets, then validation
// that reports every problem with its file, line and key.
//
// Secrets are of type Secret, which prints as *** everywhere: a token must
// never reach a log line, an error or a chat message.
package config
