package commands

import (
	"strings"
	"unicode"
)

// Split breaks a command line into words. Double quotes, single quotes and
// the typographic quotes chat clients substitute (“…”, ‘…’) group words; a
// backslash escapes the next character outside single quotes. It is not a
// shell: there is no expansion of any kind.
func Split(line string) ([]string, error) {
	var (
		words   []string
		cur     strings.Builder
		inWord  bool
		closing rune // the quote that ends the current quoted run, 0 if none
		escaped bool
	)
	for _, r := range line {
		switch {
		case escaped:
			cur.WriteRune(r)
			escaped = false
		case closing != 0 && r == closing:
			closing = 0
		case closing == '\'' || closing == '’':
			cur.WriteRune(r)
		case r == '\\':
			escaped, inWord = true, true
		case closing != 0:
			cur.WriteRune(r)
		case r == '"' || r == '\'':
			closing, inWord = r, true
		case r == '“':
			closing, inWord = '”', true
		case r == '‘':
			closing, inWord = '’', true
		case unicode.IsSpace(r):
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if closing != 0 {
		return nil, Errorf("There is an unclosed quote (%c) in your command.", quoteOpener(closing))
	}
	if escaped {
		cur.WriteRune('\\')
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

func quoteOpener(closing rune) rune {
	switch closing {
	case '”':
		return '“'
	case '’':
		return '‘'
	}
	return closing
}
