// Package shell is the terminal chat adapter: each line typed is a message
// from the local user, and replies are printed. It needs no server, which
// makes it the quickest way to try Summoner (like Hubot's shell adapter).
package shell

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/summoner-bot/summoner/chat"
)

// Shell reads commands from In and prints replies to Out.
type Shell struct {
	In     io.Reader
	Out    io.Writer
	User   chat.User
	Prompt string // printed before each line when not ""

	mu   sync.Mutex
	next int
}

var _ chat.Adapter = (*Shell)(nil)

// Channel is the one channel of the shell; it counts as a direct message.
var Channel = chat.Channel{ID: "shell", Name: "shell", Direct: true}

// Run handles one line at a time until In ends, "exit" is typed, or ctx ends.
func (s *Shell) Run(ctx context.Context, h chat.Handler) error {
	lines := make(chan string)
	readErr := make(chan error, 1)
	// The reader may stay blocked on a terminal after ctx ends; it owns
	// nothing and ends with the process.
	go func() {
		sc := bufio.NewScanner(s.In)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
		readErr <- sc.Err()
	}()
	for {
		s.prompt()
		select {
		case <-ctx.Done():
			return nil
		case err := <-readErr:
			if err != nil {
				return fmt.Errorf("reading the terminal: %w", err)
			}
			return nil
		case line := <-lines:
			line = strings.TrimSpace(line)
			switch line {
			case "":
				continue
			case "exit", "quit":
				return nil
			}
			s.mu.Lock()
			s.next++
			id := "line" + strconv.Itoa(s.next)
			s.mu.Unlock()
			now := time.Now()
			h.Handle(ctx, chat.Message{ID: id, Text: line, User: s.User, Channel: Channel, At: now, Received: now})
		}
	}
}

func (s *Shell) prompt() {
	if s.Prompt != "" {
		s.write(s.Prompt, false)
	}
}

func (s *Shell) write(text string, newline bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if newline {
		text += "\n"
	}
	_, _ = io.WriteString(s.Out, text)
}

// Post prints text.
func (s *Shell) Post(_ context.Context, _ chat.Destination, text string) (chat.PostRef, error) {
	s.write(text, true)
	return chat.PostRef{ID: "out", ChannelID: Channel.ID}, nil
}

// Reply prints text.
func (s *Shell) Reply(ctx context.Context, _ chat.Message, text string) (chat.PostRef, error) {
	return s.Post(ctx, chat.Destination{}, text)
}

// Update prints the new text on a line of its own: a terminal log reads
// better than a line rewritten in place, and works when piped.
func (s *Shell) Update(_ context.Context, _ chat.PostRef, text string) error {
	s.write(text, true)
	return nil
}
