package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/dropbox/dropbox-sdk-go-unofficial/v6/dropbox"
	"github.com/dropbox/dropbox-sdk-go-unofficial/v6/dropbox/auth"
	"github.com/dropbox/dropbox-sdk-go-unofficial/v6/dropbox/files"
	"golang.org/x/oauth2"
)

// DropboxConfig configures the Dropbox backend.
type DropboxConfig struct {
	// AppKey and AppSecret identify the Dropbox app. AppSecret may be
	// empty for an app authorized with PKCE.
	AppKey, AppSecret string
	// RefreshToken is the long-lived token from the app's OAuth flow
	// (token_access_type=offline); short-lived access tokens are made from
	// it as needed, so uploads may outlive any one of them.
	RefreshToken string
	// Root is the folder the files go in, such as "/summoner"; "/" is the
	// whole Dropbox (or the app folder, for an app-folder app).
	Root string
	// ChunkSize is the data sent per upload call and held in memory per
	// Save: a multiple of 4 MiB up to 148 MiB; 0 means 8 MiB.
	ChunkSize int
	// Domain and TokenURL are empty for the real service. Domain is either
	// an API domain suffix as in dropbox.Config (".dropboxapi.com") or the
	// base URL of a stand-in that serves the api host under /api and the
	// content host under /content; TokenURL is the OAuth 2 token endpoint,
	// required with a base-URL Domain.
	Domain, TokenURL string
}

const (
	dropboxDefaultChunk = 8 << 20
	dropboxMaxChunk     = 148 << 20 // the largest multiple of 4 MiB under Dropbox's 150 MiB per call
)

// ErrDropboxRefreshRefused is wrapped by errors when Dropbox will not
// exchange the refresh token for an access token: it was revoked (the app
// was unlinked) or belongs to another app.
var ErrDropboxRefreshRefused = errors.New("dropbox refused the refresh token")

// Dropbox stores files in a Dropbox folder through the Dropbox API.
//
// Dropbox paths are case-insensitive: names differing only in case are the
// same file, and List spells folders as they were first created. Folders
// are created by uploads and stay when their files are removed; List
// shows files only.
type Dropbox struct {
	root  string // "" or "/folder", without a trailing slash
	chunk int
	api   files.ContextClient
}

var _ Backend = (*Dropbox)(nil)

// NewDropbox checks cfg and makes a backend; it does not contact Dropbox.
func NewDropbox(cfg DropboxConfig) (*Dropbox, error) {
	if strings.TrimSpace(cfg.AppKey) == "" {
		return nil, errors.New("dropbox: AppKey is required")
	}
	if strings.TrimSpace(cfg.RefreshToken) == "" {
		return nil, errors.New("dropbox: RefreshToken is required (get one with the OAuth flow and token_access_type=offline)")
	}
	root := cfg.Root
	if !strings.HasPrefix(root, "/") || path.Clean(root) != root {
		return nil, fmt.Errorf("dropbox: Root %q must be a clean absolute folder path such as /summoner", cfg.Root)
	}
	if root == "/" {
		root = "" // how the API names the top folder
	}
	chunk := cfg.ChunkSize
	if chunk == 0 {
		chunk = dropboxDefaultChunk
	}
	if chunk < 0 || chunk%dropboxBlockSize != 0 || chunk > dropboxMaxChunk {
		return nil, fmt.Errorf("dropbox: ChunkSize %d must be a multiple of 4 MiB (4194304) up to 148 MiB", cfg.ChunkSize)
	}

	sdk := dropbox.Config{LogLevel: dropbox.LogOff}
	tokenURL := cfg.TokenURL
	switch d := cfg.Domain; {
	case strings.HasPrefix(d, "http://") || strings.HasPrefix(d, "https://"):
		u, err := url.Parse(d)
		if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("dropbox: Domain %q is not a usable base URL", d)
		}
		base := strings.TrimSuffix(d, "/")
		sdk.URLGenerator = func(host, namespace, route string) string {
			return fmt.Sprintf("%s/%s/2/%s/%s", base, host, namespace, route)
		}
		if tokenURL == "" {
			return nil, errors.New("dropbox: TokenURL is required when Domain is a URL")
		}
	case d == "" || strings.HasPrefix(d, ".") && !strings.ContainsAny(d, "/:?#"):
		sdk.Domain = d
		if tokenURL == "" {
			tokenURL = dropbox.OAuthEndpoint(d).TokenURL
		}
	default:
		return nil, fmt.Errorf("dropbox: Domain %q must be empty, a domain suffix such as .dropboxapi.com, or a base URL", d)
	}
	if u, err := url.Parse(tokenURL); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("dropbox: TokenURL %q must be an http or https URL", cfg.TokenURL)
	}

	base := http.DefaultTransport.(*http.Transport).Clone()
	base.ResponseHeaderTimeout = 5 * time.Minute // a hung server, when ctx has no deadline
	a := &dropboxAuth{
		conf: oauth2.Config{
			ClientID:     strings.TrimSpace(cfg.AppKey),
			ClientSecret: strings.TrimSpace(cfg.AppSecret),
			Endpoint:     oauth2.Endpoint{TokenURL: tokenURL, AuthStyle: oauth2.AuthStyleInParams},
		},
		refresh: strings.TrimSpace(cfg.RefreshToken),
		plain:   &http.Client{Transport: base, Timeout: time.Minute},
		sem:     make(chan struct{}, 1),
	}
	sdk.Client = &http.Client{
		Transport: &dropboxTransport{auth: a, base: base},
		// The transport signs every request, so following a redirect
		// could hand the access token to another host.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &Dropbox{root: root, chunk: chunk, api: files.NewContext(sdk)}, nil
}

// Name says where the files go.
func (d *Dropbox) Name() string {
	if d.root == "" {
		return "dropbox:/"
	}
	return "dropbox:" + d.root
}

func (d *Dropbox) path(name string) (string, error) {
	if err := checkName(name); err != nil {
		return "", err
	}
	return d.root + "/" + name, nil
}

// Save streams r to Dropbox one chunk at a time through an upload session
// (a single upload call when r fits in one chunk). Dropbox shows the file
// only when the session is finished, which makes Save atomic; an
// abandoned session is discarded by Dropbox after a week.
func (d *Dropbox) Save(ctx context.Context, name string, r io.Reader) error {
	p, err := d.path(name)
	if err != nil {
		return err
	}
	if err := d.save(ctx, p, ctxReader{ctx, r}); err != nil {
		return fmt.Errorf("saving %s to %s: %w", name, d.Name(), err)
	}
	return nil
}

func (d *Dropbox) save(ctx context.Context, p string, r io.Reader) error {
	buf := make([]byte, d.chunk)
	sum := newDropboxHasher()
	commit := files.CommitInfo{
		Path: p,
		Mode: &files.WriteMode{Tagged: dropbox.Tagged{Tag: files.WriteModeOverwrite}},
		Mute: true, // no desktop notifications for backups
	}

	n, last, err := dropboxReadChunk(ctx, r, buf)
	if err != nil {
		return err
	}
	if last {
		sum.Write(buf[:n])
		var md *files.FileMetadata
		err := dropboxRetryExpired(func() (err error) {
			md, err = d.api.UploadContext(ctx, &files.UploadArg{CommitInfo: commit}, bytes.NewReader(buf[:n]))
			return err
		})
		if err != nil {
			d.cleanUpAfter(err, p, sum.Hex(), uint64(n))
			return fmt.Errorf("uploading: %w", err)
		}
		return d.verify(p, md, sum.Hex(), uint64(n))
	}

	var session string
	err = dropboxRetryExpired(func() error {
		res, err := d.api.UploadSessionStartContext(ctx, &files.UploadSessionStartArg{}, nil)
		if err == nil {
			session = res.SessionId
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("starting an upload session: %w", err)
	}
	var offset uint64
	for {
		if n > 0 {
			cursor := &files.UploadSessionCursor{SessionId: session, Offset: offset}
			err := dropboxRetryExpired(func() error {
				// A fresh reader per try, so a retry resends the chunk.
				return d.api.UploadSessionAppendV2Context(ctx, &files.UploadSessionAppendArg{Cursor: cursor}, bytes.NewReader(buf[:n]))
			})
			if err != nil {
				return fmt.Errorf("appending at offset %d: %w", offset, err)
			}
			sum.Write(buf[:n])
			offset += uint64(n)
		}
		if last {
			break
		}
		if n, last, err = dropboxReadChunk(ctx, r, buf); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var md *files.FileMetadata
	arg := &files.UploadSessionFinishArg{Cursor: &files.UploadSessionCursor{SessionId: session, Offset: offset}, Commit: &commit}
	err = dropboxRetryExpired(func() (err error) {
		md, err = d.api.UploadSessionFinishContext(ctx, arg, nil)
		return err
	})
	if err != nil {
		d.cleanUpAfter(err, p, sum.Hex(), offset)
		return fmt.Errorf("finishing the upload: %w", err)
	}
	return d.verify(p, md, sum.Hex(), offset)
}

// dropboxReadChunk fills buf from r; last tells that r has no more data.
func dropboxReadChunk(ctx context.Context, r io.Reader, buf []byte) (n int, last bool, err error) {
	n, err = io.ReadFull(r, buf)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		last = true
	case err != nil:
		return 0, false, fmt.Errorf("reading the data: %w", err)
	}
	if cerr := ctx.Err(); cerr != nil {
		return 0, false, cerr
	}
	return n, last, nil
}

// verify compares what Dropbox stored with what was sent, and removes the
// file when they differ.
func (d *Dropbox) verify(p string, md *files.FileMetadata, hash string, size uint64) error {
	if md != nil && md.ContentHash == hash && md.Size == size {
		return nil
	}
	got := "no metadata"
	if md != nil {
		got = fmt.Sprintf("%d bytes with content hash %s", md.Size, md.ContentHash)
	}
	err := fmt.Errorf("dropbox stored %s, but %d bytes with content hash %s were sent", got, size, hash)
	ctx, cancel := dropboxCleanupContext()
	defer cancel()
	if derr := dropboxRetryExpired(func() error { _, err := d.api.DeleteV2Context(ctx, &files.DeleteArg{Path: p}); return err }); derr != nil {
		return fmt.Errorf("%w; removing the bad file failed too: %v", err, derr)
	}
	return fmt.Errorf("%w; the bad file was removed", err)
}

// cleanUpAfter handles a commit call that failed without a Dropbox
// refusal (a cancelled context, a broken connection, a 5xx): Dropbox may
// have stored the file all the same, and a failed Save must leave nothing.
// It removes the file only if it holds exactly the data that was sent.
func (d *Dropbox) cleanUpAfter(err error, p, hash string, size uint64) {
	var finishErr files.UploadSessionFinishAPIError
	var uploadErr files.UploadAPIError
	var authErr auth.AuthAPIError
	var badReq auth.BadRequest
	if errors.As(err, &finishErr) || errors.As(err, &uploadErr) || errors.As(err, &authErr) || errors.As(err, &badReq) {
		return // refused: nothing was stored
	}
	ctx, cancel := dropboxCleanupContext()
	defer cancel()
	var md files.IsMetadata
	if dropboxRetryExpired(func() (err error) {
		md, err = d.api.GetMetadataContext(ctx, &files.GetMetadataArg{Path: p})
		return err
	}) != nil {
		return
	}
	if f, ok := md.(*files.FileMetadata); ok && f.ContentHash == hash && f.Size == size {
		// Best effort: the caller returns the commit's error either way.
		_ = dropboxRetryExpired(func() error { _, err := d.api.DeleteV2Context(ctx, &files.DeleteArg{Path: p}); return err })
	}
}

// dropboxCleanupContext outlives a cancelled caller: undoing must still happen.
func dropboxCleanupContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), time.Minute)
}

// Open downloads a file; reading the body stops when ctx ends.
func (d *Dropbox) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	p, err := d.path(name)
	if err != nil {
		return nil, err
	}
	var body io.ReadCloser
	err = dropboxRetryExpired(func() (err error) {
		_, body, err = d.api.DownloadContext(ctx, &files.DownloadArg{Path: p})
		return err
	})
	if err != nil {
		var apiErr files.DownloadAPIError
		if errors.As(err, &apiErr) && apiErr.EndpointError != nil && dropboxMissing(apiErr.EndpointError.Path) {
			return nil, fmt.Errorf("opening %s on %s: %w", name, d.Name(), ErrNotExist)
		}
		return nil, fmt.Errorf("opening %s on %s: %w", name, d.Name(), err)
	}
	return body, nil
}

// dropboxMissing tells whether a lookup failed because no file is there (a
// folder is not a file of this backend).
func dropboxMissing(e *files.LookupError) bool {
	return e != nil && (e.Tag == files.LookupErrorNotFound || e.Tag == files.LookupErrorNotFile)
}

// List lists the folder recursively, from the deepest folder that prefix
// names, and keeps the files whose names start with prefix.
func (d *Dropbox) List(ctx context.Context, prefix string) ([]FileInfo, error) {
	dir := d.root
	if i := strings.LastIndex(prefix, "/"); i > 0 && checkName(prefix[:i]) == nil {
		dir = d.root + "/" + prefix[:i]
	}
	out := []FileInfo{}
	var res *files.ListFolderResult
	err := dropboxRetryExpired(func() (err error) {
		res, err = d.api.ListFolderContext(ctx, &files.ListFolderArg{Path: dir, Recursive: true})
		return err
	})
	for err == nil {
		for _, e := range res.Entries {
			f, ok := e.(*files.FileMetadata)
			if !ok {
				continue // folders, and deleted entries (never asked for)
			}
			if name, ok := d.relative(f.PathDisplay); ok && strings.HasPrefix(name, prefix) {
				out = append(out, FileInfo{Name: name, Size: int64(f.Size), ModTime: time.Time(f.ServerModified)})
			}
		}
		if !res.HasMore {
			break
		}
		if err = ctx.Err(); err != nil {
			break
		}
		cursor := res.Cursor
		err = dropboxRetryExpired(func() (err error) {
			res, err = d.api.ListFolderContinueContext(ctx, &files.ListFolderContinueArg{Cursor: cursor})
			return err
		})
	}
	if err != nil {
		var apiErr files.ListFolderAPIError
		if errors.As(err, &apiErr) && apiErr.EndpointError != nil && apiErr.EndpointError.Path != nil &&
			(apiErr.EndpointError.Path.Tag == files.LookupErrorNotFound || apiErr.EndpointError.Path.Tag == files.LookupErrorNotFolder) {
			return []FileInfo{}, nil // nothing saved there yet, or a file where prefix names a folder
		}
		return nil, fmt.Errorf("listing %s: %w", d.Name(), err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// relative turns a Dropbox path into a name under the root. The root is
// compared without case, as Dropbox does.
func (d *Dropbox) relative(p string) (string, bool) {
	if len(p) <= len(d.root)+1 || !strings.EqualFold(p[:len(d.root)], d.root) || p[len(d.root)] != '/' {
		return "", false
	}
	return p[len(d.root)+1:], true
}

// Remove deletes a file. It looks first, because Dropbox's delete also
// takes whole folders and a file name must never remove a tree.
func (d *Dropbox) Remove(ctx context.Context, name string) error {
	p, err := d.path(name)
	if err != nil {
		return err
	}
	var md files.IsMetadata
	err = dropboxRetryExpired(func() (err error) {
		md, err = d.api.GetMetadataContext(ctx, &files.GetMetadataArg{Path: p})
		return err
	})
	var getErr files.GetMetadataAPIError
	switch {
	case errors.As(err, &getErr) && getErr.EndpointError != nil && getErr.EndpointError.Path != nil &&
		getErr.EndpointError.Path.Tag == files.LookupErrorNotFound:
		return nil
	case err != nil:
		return fmt.Errorf("removing %s from %s: %w", name, d.Name(), err)
	}
	if _, ok := md.(*files.FileMetadata); !ok {
		return fmt.Errorf("removing %s from %s: it is a folder, not a file", name, d.Name())
	}
	err = dropboxRetryExpired(func() (err error) {
		_, err = d.api.DeleteV2Context(ctx, &files.DeleteArg{Path: p})
		return err
	})
	var delErr files.DeleteV2APIError
	if errors.As(err, &delErr) && delErr.EndpointError != nil && delErr.EndpointError.Tag == files.DeleteErrorPathLookup &&
		delErr.EndpointError.PathLookup != nil && delErr.EndpointError.PathLookup.Tag == files.LookupErrorNotFound {
		return nil // removed meanwhile
	}
	if err != nil {
		return fmt.Errorf("removing %s from %s: %w", name, d.Name(), err)
	}
	return nil
}

// dropboxRetryExpired runs call once more if Dropbox said the access token had
// expired; the transport has then dropped that token, so the second try
// runs with a fresh one.
func dropboxRetryExpired(call func() error) error {
	err := call()
	if dropboxExpiredToken(err) {
		err = call()
	}
	var ae *dropboxAuthError
	if errors.As(err, &ae) {
		return ae // without the http.Client's "Post <url>:" around it
	}
	return err
}

// dropboxAuthError is a failure to get an access token.
type dropboxAuthError struct{ err error }

func (e *dropboxAuthError) Error() string { return e.err.Error() }
func (e *dropboxAuthError) Unwrap() error { return e.err }

func dropboxExpiredToken(err error) bool {
	var authErr auth.AuthAPIError
	return errors.As(err, &authErr) && authErr.AuthError != nil && authErr.AuthError.Tag == auth.AuthErrorExpiredAccessToken
}

// dropboxAuth keeps the current access token and makes a new one from the
// refresh token when it is missing, about to expire, or was refused.
type dropboxAuth struct {
	conf    oauth2.Config
	refresh string
	plain   *http.Client  // for the token endpoint
	sem     chan struct{} // one holder at a time; a channel so waiting honours ctx
	tok     *oauth2.Token
}

func (a *dropboxAuth) lock(ctx context.Context) error {
	select {
	case a.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (a *dropboxAuth) unlock() { <-a.sem }

func (a *dropboxAuth) token(ctx context.Context) (string, error) {
	if err := a.lock(ctx); err != nil {
		return "", err
	}
	defer a.unlock()
	if a.tok != nil && (a.tok.Expiry.IsZero() || time.Until(a.tok.Expiry) > time.Minute) {
		return a.tok.AccessToken, nil
	}
	src := a.conf.TokenSource(context.WithValue(ctx, oauth2.HTTPClient, a.plain), &oauth2.Token{RefreshToken: a.refresh})
	tok, err := src.Token()
	if err != nil {
		return "", refreshError(err)
	}
	a.tok = tok
	return tok.AccessToken, nil
}

// expire drops tok if it is still the current token.
func (a *dropboxAuth) expire(ctx context.Context, tok string) {
	if a.lock(ctx) != nil {
		return
	}
	defer a.unlock()
	if a.tok != nil && a.tok.AccessToken == tok {
		a.tok = nil
	}
}

// refreshError explains a failed refresh without the response body or the
// request, which could carry secrets.
func refreshError(err error) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		return fmt.Errorf("dropbox token refresh: %w", err)
	}
	desc := re.ErrorCode
	if re.ErrorDescription != "" {
		desc += ": " + re.ErrorDescription
	}
	switch re.ErrorCode {
	case "invalid_grant":
		return fmt.Errorf("%w (%s): it was revoked or belongs to another app; authorize the app again for a new one", ErrDropboxRefreshRefused, desc)
	case "invalid_client":
		return fmt.Errorf("dropbox refused the app key or secret (%s)", desc)
	}
	status := 0
	if re.Response != nil {
		status = re.Response.StatusCode
	}
	return fmt.Errorf("dropbox token refresh failed with HTTP %d (%s)", status, desc)
}

// dropboxTransport signs requests with the current access token, forgets
// a token Dropbox calls expired, and escapes the Dropbox-API-Arg header,
// which the SDK leaves with raw non-ASCII characters that Dropbox refuses.
type dropboxTransport struct {
	auth *dropboxAuth
	base http.RoundTripper
}

func (t *dropboxTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	tok, err := t.auth.token(req.Context())
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		if ctxErr := req.Context().Err(); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, &dropboxAuthError{err}
	}
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", "Bearer "+tok)
	if arg := r.Header.Get("Dropbox-API-Arg"); arg != "" {
		r.Header.Set("Dropbox-API-Arg", dropboxHeaderSafe(arg))
	}
	resp, err := t.base.RoundTrip(r)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if bytes.Contains(body, []byte(auth.AuthErrorExpiredAccessToken)) {
		t.auth.expire(req.Context(), tok)
	}
	return resp, nil
}

// dropboxHeaderSafe escapes non-ASCII characters of JSON as \u escapes (with
// surrogate pairs beyond the BMP), as Dropbox wants in headers.
func dropboxHeaderSafe(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < 0x7f {
			b.WriteRune(r)
			continue
		}
		for _, u := range utf16.Encode([]rune{r}) {
			fmt.Fprintf(&b, `\u%04x`, u)
		}
	}
	return b.String()
}
