package main

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"

	"github.com/summoner-bot/summoner/config"
	"github.com/summoner-bot/summoner/gateway"
)

// runGateway is `summoner gateway`: the process that faces the internet,
// with no Docker socket. It serves until ctx ends (SIGTERM, SIGINT).
func runGateway(ctx context.Context, cfg config.Config, stderr io.Writer) error {
	return gateway.Run(ctx, gatewayOptions(cfg, newLogger(cfg.Log, stderr, false)))
}

// gatewayOptions maps the gateway block of the configuration.
func gatewayOptions(cfg config.Config, log *slog.Logger) gateway.Options {
	g := cfg.Gateway
	return gateway.Options{
		HTTPAddr:    g.HTTPListen,
		HTTPSAddr:   g.HTTPSListen,
		AdminSocket: gatewaySocket(cfg),
		StorageDir:  g.StorageDir,
		CA:          g.ACMECA,
		CARootFile:  g.ACMECARoot,
		Email:       g.Email,
		Logger:      log,
	}
}

// gatewaySocket is the gateway's admin socket: gateway.admin_socket, or
// gateway.sock beside chat.state_file.
func gatewaySocket(cfg config.Config) string {
	if cfg.Gateway.AdminSocket != "" {
		return cfg.Gateway.AdminSocket
	}
	return filepath.Join(filepath.Dir(cfg.Chat.StateFile), "gateway.sock")
}
