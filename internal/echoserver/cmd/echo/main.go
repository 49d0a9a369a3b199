// Command echo runs echoserver: the stand-in web service of the image
// 127.0.0.1:5000/summoner/echo (built by .ci/docker.sh). It listens on
// :$PORT (default 8080) as service $SERVICE (default "echo"), and stops at
// once on SIGTERM or SIGINT.
//
//	echo          serve
//	echo -check   exit 0 if http://127.0.0.1:$PORT/healthz answers 200 (for
//	              healthchecks: the image has no curl)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/summoner-bot/summoner/internal/echoserver"
)

func main() {
	check := flag.Bool("check", false, "check /healthz of the running server and exit")
	flag.Parse()
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	service := os.Getenv("SERVICE")
	if service == "" {
		service = "echo"
	}
	if *check {
		os.Exit(healthcheck(port))
	}
	log.SetFlags(0)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	srv := &http.Server{Addr: ":" + port, Handler: echoserver.New(service), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		log.Printf("echo %s stopping", service)
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			log.Printf("echo %s: stopping: %v", service, err)
		}
	}()
	log.Printf("echo %s listening on :%s", service, port)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

func healthcheck(port string) int {
	c := http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get("http://127.0.0.1:" + port + "/healthz")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, resp.Status)
		return 1
	}
	return 0
}
