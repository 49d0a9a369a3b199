// Package dropboxtest is an in-memory stand-in for the few Dropbox HTTP API
// v2 endpoints that storage.Dropbox calls. It exists because Dropbox's
// servers cannot be reached from where the tests run; it speaks the same
// wire format as the real service (JSON arguments in the body or in the
// Dropbox-API-Arg header, results in the body or Dropbox-API-Result, 409
// errors with error_summary and a tagged "error", 401 for bad or expired
// access tokens, the OAuth 2 refresh grant) so that the real SDK runs
// unchanged against it.
//
// Modelled: files/upload, upload_session/start, append_v2 and finish (offset
// checks, closed sessions, a per-call content_hash check, the 4 MiB rule for
// non-final chunks, write modes add/overwrite/update), files/download,
// get_metadata, delete_v2, list_folder and list_folder/continue (paged,
// recursive or not, folders created implicitly by uploads and kept after
// deletes, case-insensitive paths with the first spelling of a folder
// kept), the content_hash of stored files, ASCII-only Dropbox-API-Arg, and
// oauth2/token with grant_type=refresh_token.
//
// Not modelled: every other route; rate limits (429) and retry-after;
// namespaces, Dropbox-API-Path-Root and team/select-user headers; scopes;
// id:, rev: and ns: paths; Unicode case folding beyond strings.ToLower;
// disallowed file names; revisions, deleted entries and restore; cursors
// that see later changes (ours are snapshots); concurrent upload sessions
// and session expiry; range downloads; the rejection of unknown argument
// fields; quotas; other OAuth grants.
package dropboxtest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/dropbox/dropbox-sdk-go-unofficial/v6/dropbox/contenthash"
)

const (
	blockSize      = 4 << 20   // append_v2 chunks must be multiples of this
	maxCallPayload = 150 << 20 // Dropbox's limit on data in one call
	timeFormat     = "2006-01-02T15:04:05Z"
)

// Server is a running stand-in. Point storage.DropboxConfig at it with
// Domain: s.Domain(), TokenURL: s.TokenURL() and the credentials below.
type Server struct {
	// Credentials the token endpoint accepts.
	AppKey, AppSecret, RefreshToken string
	// URL is the base of the stand-in; the api host is served under
	// URL+"/api", the content host under URL+"/content".
	URL string
	// PageSize bounds list_folder pages when the caller sets no limit.
	// It is small by default so that clients must follow cursors.
	PageSize int
	// TokenLifetime is the expires_in of new access tokens; 4 hours, as
	// Dropbox issues, unless a test changes it.
	TokenLifetime time.Duration

	mu          sync.Mutex
	tokens      map[string]time.Time // access token -> expiry
	sessions    map[string]*session
	files       map[string]*file  // by lower-case path
	folders     map[string]string // lower-case path -> display path
	cursors     map[string][]entry
	revoked     bool
	expireAfter int // API calls the current tokens still accept; -1: no limit
	failAppend  bool
	corruptNext bool
	loseFinish  bool
	appends     int
	refreshes   int
	seq         int
}

type session struct {
	chunks [][]byte
	size   int64
	closed bool
	busy   bool // a call is using it; Dropbox refuses concurrent appends too
}

type file struct {
	display  string
	chunks   [][]byte // never changed once stored, so readers need no lock
	size     int64
	hash     string
	id, rev  string
	modified time.Time
}

type entry map[string]any

// New starts a stand-in that stops when t ends.
func New(t testing.TB) *Server {
	s := &Server{
		AppKey:        "test-app-key",
		AppSecret:     "secret-" + randomHex(8),
		RefreshToken:  "refresh-" + randomHex(16),
		PageSize:      3,
		TokenLifetime: 4 * time.Hour,
		tokens:        map[string]time.Time{},
		sessions:      map[string]*session{},
		files:         map[string]*file{},
		folders:       map[string]string{},
		cursors:       map[string][]entry{},
		expireAfter:   -1,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /oauth2/token", s.token)
	mux.HandleFunc("POST /api/2/files/list_folder", s.rpc(s.listFolder))
	mux.HandleFunc("POST /api/2/files/list_folder/continue", s.rpc(s.listFolderContinue))
	mux.HandleFunc("POST /api/2/files/get_metadata", s.rpc(s.getMetadata))
	mux.HandleFunc("POST /api/2/files/delete_v2", s.rpc(s.deleteV2))
	mux.HandleFunc("POST /content/2/files/upload", s.content(s.upload))
	mux.HandleFunc("POST /content/2/files/upload_session/start", s.content(s.uploadStart))
	mux.HandleFunc("POST /content/2/files/upload_session/append_v2", s.content(s.uploadAppend))
	mux.HandleFunc("POST /content/2/files/upload_session/finish", s.content(s.uploadFinish))
	mux.HandleFunc("POST /content/2/files/download", s.content(s.download))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// Domain is the value for storage.DropboxConfig.Domain.
func (s *Server) Domain() string { return s.URL }

// TokenURL is the value for storage.DropboxConfig.TokenURL.
func (s *Server) TokenURL() string { return s.URL + "/oauth2/token" }

// ExpireTokenAfterCalls lets the access tokens issued so far serve n more
// API calls; the next one gets 401 expired_access_token, as do all later
// calls with those tokens. Tokens issued afterwards are not affected.
func (s *Server) ExpireTokenAfterCalls(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireAfter = n
}

// RevokeRefreshToken makes the token endpoint refuse the refresh token,
// as Dropbox does once the user unlinks the app.
func (s *Server) RevokeRefreshToken() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revoked = true
}

// FailNextAppend makes the next append_v2 fail with a 500.
func (s *Server) FailNextAppend() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failAppend = true
}

// CorruptNextFinish makes the next upload_session/finish store the file but
// report a content_hash that does not match it.
func (s *Server) CorruptNextFinish() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.corruptNext = true
}

// LoseNextFinishResponse makes the next upload_session/finish store the
// file and then answer 500, as when a response is lost on the way.
func (s *Server) LoseNextFinishResponse() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loseFinish = true
}

// Appends counts successful append_v2 calls.
func (s *Server) Appends() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.appends
}

// Refreshes counts access tokens issued by the refresh grant.
func (s *Server) Refreshes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refreshes
}

// StoredBytes is the size of all stored files and open upload sessions.
func (s *Server) StoredBytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for _, f := range s.files {
		n += f.size
	}
	for _, ss := range s.sessions {
		n += ss.size
	}
	return n
}

// token serves the refresh grant of https://api.dropboxapi.com/oauth2/token.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "bad form")
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if r.PostForm.Get("grant_type") != "refresh_token" {
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "only refresh_token is modelled")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case id != s.AppKey || secret != s.AppSecret:
		oauthError(w, http.StatusBadRequest, "invalid_client", "Invalid client_id or client_secret")
	case s.revoked || r.PostForm.Get("refresh_token") != s.RefreshToken:
		oauthError(w, http.StatusBadRequest, "invalid_grant", "refresh token is invalid or revoked")
	default:
		tok := "sl.test-" + randomHex(16)
		s.tokens[tok] = time.Now().Add(s.TokenLifetime)
		s.refreshes++
		writeJSON(w, http.StatusOK, map[string]any{
			"access_token": tok,
			"token_type":   "bearer",
			"expires_in":   int(s.TokenLifetime.Seconds()),
		})
	}
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

// authorize checks the bearer token and counts the call against an
// ExpireTokenAfterCalls budget.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	defer s.mu.Unlock()
	expiry, known := s.tokens[tok]
	switch {
	case !ok || !known:
		authError(w, "invalid_access_token")
		return false
	case time.Now().After(expiry):
		authError(w, "expired_access_token")
		return false
	case s.expireAfter == 0:
		s.expireAfter = -1
		for t := range s.tokens {
			s.tokens[t] = time.Time{}
		}
		authError(w, "expired_access_token")
		return false
	case s.expireAfter > 0:
		s.expireAfter--
	}
	return true
}

func authError(w http.ResponseWriter, tag string) {
	writeJSON(w, http.StatusUnauthorized, map[string]any{
		"error_summary": tag + "/...",
		"error":         map[string]string{".tag": tag},
	})
}

type handler func(w http.ResponseWriter, r *http.Request, arg []byte)

// rpc wraps an api-host route: JSON argument in, JSON result out.
func (s *Server) rpc(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		arg, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			return
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			badRequest(w, r, fmt.Sprintf("Bad HTTP \"Content-Type\" header: %q. Expecting \"application/json\".", ct))
			return
		}
		if s.authorize(w, r) {
			h(w, r, arg)
		}
	}
}

// content wraps a content-host route: argument in Dropbox-API-Arg, data in
// the body.
func (s *Server) content(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w = drainingWriter{w, r.Body}
		arg := r.Header.Get("Dropbox-API-Arg")
		for i := 0; i < len(arg); i++ {
			if arg[i] >= 0x7f {
				badRequest(w, r, "Dropbox-API-Arg must be ASCII; escape other characters as \\uXXXX")
				return
			}
		}
		if arg == "" {
			badRequest(w, r, "missing Dropbox-API-Arg header")
			return
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/octet-stream" && r.URL.Path != "/content/2/files/download" {
			badRequest(w, r, fmt.Sprintf("Bad HTTP \"Content-Type\" header: %q. Expecting \"application/octet-stream\".", ct))
			return
		}
		if s.authorize(w, r) {
			h(w, r, []byte(arg))
		}
	}
}

// drainingWriter reads what is left of the request before answering, so
// an early error reaches a client still sending data instead of a reset
// connection.
type drainingWriter struct {
	http.ResponseWriter
	body io.Reader
}

func (d drainingWriter) WriteHeader(code int) {
	_, _ = io.Copy(io.Discard, d.body) // a body that breaks off: the answer follows all the same
	d.ResponseWriter.WriteHeader(code)
}

func badRequest(w http.ResponseWriter, r *http.Request, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusBadRequest)
	_, route, _ := strings.Cut(r.URL.Path, "/2/")
	fmt.Fprintf(w, "Error in call to API function %q: %s", route, msg)
}

// apiError writes a route error: 409 with error_summary and the tagged
// error, e.g. apiError(w, "path/not_found", entry{".tag": "path", ...}).
func apiError(w http.ResponseWriter, summary string, e any) {
	writeJSON(w, http.StatusConflict, map[string]any{"error_summary": summary + "/...", "error": e})
}

func notFound(w http.ResponseWriter, field string) {
	apiError(w, field+"/not_found", entry{".tag": field, field: entry{".tag": "not_found"}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // our own values; a lost answer is the client's to see
}

func decode(w http.ResponseWriter, r *http.Request, arg []byte, v any) bool {
	if err := json.Unmarshal(arg, v); err != nil {
		badRequest(w, r, "could not decode input as JSON: "+err.Error())
		return false
	}
	return true
}

// readData reads the data of a content call, refusing more than one call
// may carry. It sizes the buffer from Content-Length, so a chunk is held
// once.
func readData(w http.ResponseWriter, r *http.Request, tooLarge func()) ([]byte, bool) {
	if r.ContentLength > maxCallPayload {
		tooLarge()
		return nil, false
	}
	var data []byte
	var err error
	if r.ContentLength >= 0 {
		data = make([]byte, r.ContentLength)
		_, err = io.ReadFull(r.Body, data)
	} else {
		data, err = io.ReadAll(io.LimitReader(r.Body, maxCallPayload+1))
		if err == nil && len(data) > maxCallPayload {
			tooLarge()
			return nil, false
		}
	}
	if err != nil {
		badRequest(w, r, "reading the request body: "+err.Error())
		return nil, false
	}
	return data, true
}

// checkHash verifies an optional per-call content_hash.
func checkHash(data []byte, want string) bool {
	if want == "" {
		return true
	}
	h := contenthash.New()
	h.Write(data)
	return h.HexDigest() == want
}

type cursorArg struct {
	SessionID string `json:"session_id"`
	Offset    int64  `json:"offset"`
}

type commitArg struct {
	Path           string          `json:"path"`
	Mode           json.RawMessage `json:"mode"`
	Autorename     bool            `json:"autorename"`
	ClientModified string          `json:"client_modified"`
	StrictConflict bool            `json:"strict_conflict"`
}

func (s *Server) uploadStart(w http.ResponseWriter, r *http.Request, raw []byte) {
	var arg struct {
		Close       bool            `json:"close"`
		SessionType json.RawMessage `json:"session_type"`
		ContentHash string          `json:"content_hash"`
	}
	if !decode(w, r, raw, &arg) {
		return
	}
	if len(arg.SessionType) > 0 && !strings.Contains(string(arg.SessionType), "sequential") {
		badRequest(w, r, "only sequential upload sessions are modelled")
		return
	}
	data, ok := readData(w, r, func() { apiError(w, "payload_too_large", entry{".tag": "payload_too_large"}) })
	if !ok {
		return
	}
	if !checkHash(data, arg.ContentHash) {
		apiError(w, "content_hash_mismatch", entry{".tag": "content_hash_mismatch"})
		return
	}
	ss := &session{closed: arg.Close}
	if len(data) > 0 {
		ss.chunks, ss.size = [][]byte{data}, int64(len(data))
	}
	s.mu.Lock()
	s.seq++
	id := fmt.Sprintf("sess-%d-%s", s.seq, randomHex(6))
	s.sessions[id] = ss
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]string{"session_id": id})
}

// claim takes a session for one call after checking the cursor; the
// returned function gives it back. On failure it has written the error,
// shaped by wrap (append_v2 reports lookup errors bare, finish wraps them).
func (s *Server) claim(w http.ResponseWriter, c cursorArg, dataLen int, wrap func(summary string, e entry)) (*session, func(), bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.sessions[c.SessionID]
	switch {
	case ss == nil:
		wrap("not_found", entry{".tag": "not_found"})
	case ss.busy:
		wrap("other", entry{".tag": "other"})
	case c.Offset != ss.size:
		wrap("incorrect_offset", entry{".tag": "incorrect_offset", "correct_offset": ss.size})
	case ss.closed && dataLen > 0:
		wrap("closed", entry{".tag": "closed"})
	case dataLen > 0 && ss.size%blockSize != 0:
		// The previous chunk turned out not to be the last one.
		wrap("concurrent_session_invalid_data_size", entry{".tag": "concurrent_session_invalid_data_size"})
	default:
		ss.busy = true
		return ss, func() {
			s.mu.Lock()
			ss.busy = false
			s.mu.Unlock()
		}, true
	}
	return nil, nil, false
}

func (s *Server) uploadAppend(w http.ResponseWriter, r *http.Request, raw []byte) {
	var arg struct {
		Cursor      cursorArg `json:"cursor"`
		Close       bool      `json:"close"`
		ContentHash string    `json:"content_hash"`
	}
	if !decode(w, r, raw, &arg) {
		return
	}
	s.mu.Lock()
	fail := s.failAppend
	s.failAppend = false
	s.mu.Unlock()
	if fail {
		http.Error(w, "stand-in: append failed as asked", http.StatusInternalServerError)
		return
	}
	bare := func(summary string, e entry) { apiError(w, summary, e) }
	data, ok := readData(w, r, func() { bare("payload_too_large", entry{".tag": "payload_too_large"}) })
	if !ok {
		return
	}
	ss, release, ok := s.claim(w, arg.Cursor, len(data), bare)
	if !ok {
		return
	}
	defer release()
	if !checkHash(data, arg.ContentHash) {
		bare("content_hash_mismatch", entry{".tag": "content_hash_mismatch"})
		return
	}
	s.mu.Lock()
	if len(data) > 0 {
		ss.chunks = append(ss.chunks, data)
		ss.size += int64(len(data))
	}
	ss.closed = ss.closed || arg.Close
	s.appends++
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, nil)
}

func (s *Server) uploadFinish(w http.ResponseWriter, r *http.Request, raw []byte) {
	var arg struct {
		Cursor      cursorArg `json:"cursor"`
		Commit      commitArg `json:"commit"`
		ContentHash string    `json:"content_hash"`
	}
	if !decode(w, r, raw, &arg) {
		return
	}
	lookup := func(summary string, e entry) {
		apiError(w, "lookup_failed/"+summary, entry{".tag": "lookup_failed", "lookup_failed": e})
	}
	data, ok := readData(w, r, func() { apiError(w, "payload_too_large", entry{".tag": "payload_too_large"}) })
	if !ok {
		return
	}
	ss, release, ok := s.claim(w, arg.Cursor, len(data), lookup)
	if !ok {
		return
	}
	defer release()
	if !checkHash(data, arg.ContentHash) {
		apiError(w, "content_hash_mismatch", entry{".tag": "content_hash_mismatch"})
		return
	}
	chunks := ss.chunks
	if len(data) > 0 {
		chunks = append(chunks[:len(chunks):len(chunks)], data)
	}
	md, werr := s.commit(arg.Commit, chunks)
	if werr != nil {
		apiError(w, "path/"+werr.summary, entry{".tag": "path", "path": werr.e})
		return
	}
	s.mu.Lock()
	delete(s.sessions, arg.Cursor.SessionID)
	if s.corruptNext {
		s.corruptNext = false
		md["content_hash"] = strings.Repeat("0", 64)
	}
	lose := s.loseFinish
	s.loseFinish = false
	s.mu.Unlock()
	if lose {
		http.Error(w, "stand-in: finish response lost as asked", http.StatusInternalServerError)
		return
	}
	writeJSON(w, http.StatusOK, md)
}

func (s *Server) upload(w http.ResponseWriter, r *http.Request, raw []byte) {
	var arg struct {
		commitArg
		ContentHash string `json:"content_hash"`
	}
	if !decode(w, r, raw, &arg) {
		return
	}
	data, ok := readData(w, r, func() { apiError(w, "payload_too_large", entry{".tag": "payload_too_large"}) })
	if !ok {
		return
	}
	if !checkHash(data, arg.ContentHash) {
		apiError(w, "content_hash_mismatch", entry{".tag": "content_hash_mismatch"})
		return
	}
	md, werr := s.commit(arg.commitArg, [][]byte{data})
	if werr != nil {
		e := entry{".tag": "path", "reason": werr.e, "upload_session_id": ""}
		apiError(w, "path/"+werr.summary, e)
		return
	}
	writeJSON(w, http.StatusOK, md)
}

type writeErr struct {
	summary string
	e       entry
}

func conflict(kind string) *writeErr {
	return &writeErr{"conflict/" + kind, entry{".tag": "conflict", "conflict": entry{".tag": kind}}}
}

// commit stores chunks as a file under c.Path, making its folders.
func (s *Server) commit(c commitArg, chunks [][]byte) (entry, *writeErr) {
	if !validPath(c.Path) {
		return nil, &writeErr{"malformed_path", entry{".tag": "malformed_path"}}
	}
	var mode struct {
		Tag    string `json:".tag"`
		Update string `json:"update"`
	}
	if len(c.Mode) == 0 || json.Unmarshal(c.Mode, &mode.Tag) != nil && json.Unmarshal(c.Mode, &mode) != nil {
		mode.Tag = "add"
	}
	// Hash before taking the lock: it reads every byte.
	h := contenthash.New()
	var size int64
	for _, c := range chunks {
		h.Write(c)
		size += int64(len(c))
	}
	sum := h.HexDigest()

	s.mu.Lock()
	defer s.mu.Unlock()
	lower := strings.ToLower(c.Path)
	for dir := path.Dir(lower); dir != "/"; dir = path.Dir(dir) {
		if _, isFile := s.files[dir]; isFile {
			return nil, conflict("file_ancestor")
		}
	}
	if _, isDir := s.folders[lower]; isDir {
		return nil, conflict("folder")
	}
	if old := s.files[lower]; old != nil {
		switch mode.Tag {
		case "overwrite":
		case "update":
			if old.rev != mode.Update {
				return nil, conflict("file")
			}
		default:
			if old.hash != sum || c.StrictConflict {
				return nil, conflict("file")
			}
			return s.fileEntry(old), nil // Dropbox treats identical content as a no-op
		}
	}
	s.seq++
	f := &file{
		display:  s.makeFolders(c.Path),
		chunks:   chunks,
		size:     size,
		hash:     sum,
		id:       fmt.Sprintf("id:stand-in-%d", s.seq),
		rev:      fmt.Sprintf("%015x", s.seq),
		modified: time.Now().UTC().Truncate(time.Second),
	}
	s.files[lower] = f
	return s.fileEntry(f), nil
}

// makeFolders creates the parents of p, keeping the spelling of folders
// that exist, and returns p's display path.
func (s *Server) makeFolders(p string) string {
	display := ""
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for i, part := range parts {
		next := display + "/" + part
		if i == len(parts)-1 {
			return next
		}
		lower := strings.ToLower(next)
		if d, ok := s.folders[lower]; ok {
			next = d
		} else {
			s.folders[lower] = next
		}
		display = next
	}
	return display
}

func validPath(p string) bool {
	if !strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") {
		return false
	}
	for _, part := range strings.Split(p[1:], "/") {
		if part == "" || part == "." || part == ".." {
			return false
		}
	}
	return true
}

func (s *Server) fileEntry(f *file) entry {
	mod := f.modified.Format(timeFormat)
	return entry{
		".tag":            "file",
		"name":            path.Base(f.display),
		"id":              f.id,
		"client_modified": mod,
		"server_modified": mod,
		"rev":             f.rev,
		"size":            f.size,
		"path_lower":      strings.ToLower(f.display),
		"path_display":    f.display,
		"is_downloadable": true,
		"content_hash":    f.hash,
	}
}

func folderEntry(display string) entry {
	return entry{
		".tag":         "folder",
		"name":         path.Base(display),
		"id":           "id:folder" + strings.ToLower(display),
		"path_lower":   strings.ToLower(display),
		"path_display": display,
	}
}

type pathArg struct {
	Path string `json:"path"`
}

// lookup finds a file or folder entry; the caller holds s.mu.
func (s *Server) lookup(p string) entry {
	lower := strings.ToLower(p)
	if f := s.files[lower]; f != nil {
		return s.fileEntry(f)
	}
	if d, ok := s.folders[lower]; ok {
		return folderEntry(d)
	}
	return nil
}

func (s *Server) download(w http.ResponseWriter, r *http.Request, raw []byte) {
	var arg pathArg
	if !decode(w, r, raw, &arg) {
		return
	}
	s.mu.Lock()
	f := s.files[strings.ToLower(arg.Path)]
	_, isDir := s.folders[strings.ToLower(arg.Path)]
	var md entry
	if f != nil {
		md = s.fileEntry(f)
	}
	s.mu.Unlock()
	switch {
	case !validPath(arg.Path):
		apiError(w, "path/malformed_path", entry{".tag": "path", "path": entry{".tag": "malformed_path"}})
		return
	case isDir:
		apiError(w, "path/not_file", entry{".tag": "path", "path": entry{".tag": "not_file"}})
		return
	case f == nil:
		notFound(w, "path")
		return
	}
	result, _ := json.Marshal(md)
	w.Header().Set("Dropbox-API-Result", headerSafe(result))
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", fmt.Sprint(f.size))
	for _, c := range f.chunks {
		if _, err := w.Write(c); err != nil {
			return
		}
	}
}

// headerSafe escapes non-ASCII characters as JSON \u escapes, which is how
// Dropbox puts JSON into HTTP headers.
func headerSafe(b []byte) string {
	var sb strings.Builder
	for _, r := range string(b) {
		if r < 0x7f {
			sb.WriteRune(r)
			continue
		}
		for _, u := range utf16.Encode([]rune{r}) {
			fmt.Fprintf(&sb, "\\u%04x", u)
		}
	}
	return sb.String()
}

func (s *Server) getMetadata(w http.ResponseWriter, r *http.Request, raw []byte) {
	var arg pathArg
	if !decode(w, r, raw, &arg) {
		return
	}
	s.mu.Lock()
	md := s.lookup(arg.Path)
	s.mu.Unlock()
	if md == nil {
		notFound(w, "path")
		return
	}
	writeJSON(w, http.StatusOK, md)
}

func (s *Server) deleteV2(w http.ResponseWriter, r *http.Request, raw []byte) {
	var arg pathArg
	if !decode(w, r, raw, &arg) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	md := s.lookup(arg.Path)
	if md == nil {
		notFound(w, "path_lookup")
		return
	}
	s.deleteTree(strings.ToLower(arg.Path))
	writeJSON(w, http.StatusOK, entry{"metadata": md})
}

// deleteTree removes a file or a folder with all it holds; the caller
// holds s.mu.
func (s *Server) deleteTree(lower string) {
	delete(s.files, lower)
	delete(s.folders, lower)
	for p := range s.files {
		if strings.HasPrefix(p, lower+"/") {
			delete(s.files, p)
		}
	}
	for p := range s.folders {
		if strings.HasPrefix(p, lower+"/") {
			delete(s.folders, p)
		}
	}
}

// DeleteTree removes a file or folder and all it holds, freeing its
// memory, as a test's clean-up.
func (s *Server) DeleteTree(p string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deleteTree(strings.ToLower(p))
}

func (s *Server) listFolder(w http.ResponseWriter, r *http.Request, raw []byte) {
	var arg struct {
		Path      string `json:"path"`
		Recursive bool   `json:"recursive"`
		Limit     int    `json:"limit"`
	}
	if !decode(w, r, raw, &arg) {
		return
	}
	if arg.Path != "" && !validPath(arg.Path) {
		apiError(w, "path/malformed_path", entry{".tag": "path", "path": entry{".tag": "malformed_path"}})
		return
	}
	lower := strings.ToLower(arg.Path)
	s.mu.Lock()
	defer s.mu.Unlock()
	all := []entry{}
	if arg.Path != "" {
		if _, isFile := s.files[lower]; isFile {
			apiError(w, "path/not_folder", entry{".tag": "path", "path": entry{".tag": "not_folder"}})
			return
		}
		d, ok := s.folders[lower]
		if !ok {
			notFound(w, "path")
			return
		}
		all = append(all, folderEntry(d)) // Dropbox lists the folder itself too
	}
	under := func(p string) bool {
		rest, ok := strings.CutPrefix(p, lower+"/")
		return ok && (arg.Recursive || !strings.Contains(rest, "/"))
	}
	for p, d := range s.folders {
		if under(p) {
			all = append(all, folderEntry(d))
		}
	}
	for p, f := range s.files {
		if under(p) {
			all = append(all, s.fileEntry(f))
		}
	}
	// Parents before children, as Dropbox sends them; clients must not
	// rely on any other order.
	sort.SliceStable(all, func(i, j int) bool {
		return strings.Count(all[i]["path_lower"].(string), "/") < strings.Count(all[j]["path_lower"].(string), "/")
	})
	s.page(w, all, arg.Limit)
}

func (s *Server) listFolderContinue(w http.ResponseWriter, r *http.Request, raw []byte) {
	var arg struct {
		Cursor string `json:"cursor"`
	}
	if !decode(w, r, raw, &arg) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rest, ok := s.cursors[arg.Cursor]
	if !ok {
		apiError(w, "reset", entry{".tag": "reset"})
		return
	}
	delete(s.cursors, arg.Cursor)
	s.page(w, rest, 0)
}

// page writes the first page of entries and keeps the rest under a new
// cursor; the caller holds s.mu.
func (s *Server) page(w http.ResponseWriter, all []entry, limit int) {
	if limit <= 0 {
		limit = s.PageSize
	}
	n := min(limit, len(all))
	cursor := "cursor-" + randomHex(8)
	s.cursors[cursor] = all[n:] // an empty rest still lets a caller poll
	writeJSON(w, http.StatusOK, entry{"entries": all[:n], "cursor": cursor, "has_more": n < len(all)})
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
