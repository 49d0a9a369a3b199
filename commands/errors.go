package commands

import "fmt"

// UserError is an error meant for the person who typed the command: its
// text is shown verbatim in chat. Any other error is treated as internal.
type UserError struct{ msg string }

func (e *UserError) Error() string { return e.msg }

// Errorf makes a UserError.
func Errorf(format string, args ...any) error {
	return &UserError{msg: fmt.Sprintf(format, args...)}
}

// userMessage is implemented by domain errors written for users (a
// minions.Error, say); they are shown like a UserError, without the
// domain package having to know about this one.
type userMessage interface {
	UserMessage() string
}

// explained is a failure written for the user that keeps its cause: the
// router shows msg and logs the cause in full.
type explained struct {
	msg   string
	cause error
}

func (e *explained) Error() string       { return e.msg }
func (e *explained) UserMessage() string { return e.msg }
func (e *explained) Unwrap() error       { return e.cause }
