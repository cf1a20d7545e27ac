package api

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
	"golang.org/x/crypto/bcrypt"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/ui"
)

// Cookie and form names.
const (
	sessionCookie = "tlsrpt_session"
	// loginCookie carries the login form's CSRF token (double submit):
	// there is no session yet to hold it.
	loginCookie = "tlsrpt_login"
	csrfField   = "csrf"
	csrfHeader  = "X-CSRF-Token"
	// AdminUser is the name of the admin account.
	AdminUser = "admin"
	// TokenPrefix starts every API token, so a leaked one is recognisable.
	TokenPrefix = db.TokenPrefix
	// maxPasswordBytes is bcrypt's limit: it ignores what follows.
	maxPasswordBytes = 72
	// maxLoginBody bounds the login form's body: a user name, a password
	// of at most maxPasswordBytes, the form's token and a next URL (at most
	// 2048 bytes, safeNext) fit, URL-encoded, with room to spare. An
	// anonymous request once spooled 296 MiB of multipart body to /tmp.
	maxLoginBody = 8 << 10
)

// principal is who makes a request.
type principal struct {
	Name string
	Role string
	// CSRF is the session's token; empty for Bearer requests, which need
	// none (a browser never sends the header on its own).
	CSRF   string
	Bearer bool
	cookie string
	// userID is the session's account (0 for a Bearer token).
	userID int64
}

func (p *principal) admin() bool { return p != nil && p.Role == db.RoleAdmin }

func principalOf(c echo.Context) *principal {
	p, _ := c.Get("principal").(*principal)
	return p
}

// NewSecret returns a random 256-bit secret, base64url-encoded
// (db.NewSecret).
func NewSecret() string { return db.NewSecret() }

// NewAPIToken returns a fresh API token; store only db.SecretHash of it.
func NewAPIToken() string { return db.NewAPIToken() }

// HashPassword hashes a password with bcrypt (db.HashPassword).
func HashPassword(pw string) (string, error) { return db.HashPassword(pw) }

// EnsureAdmin makes sure the admin account exists. With
// Config.AdminPassword set, the account gets that password (and its
// sessions end when it changed). Without one, a missing account is created
// with a generated password, which is returned once for the caller to
// print; an existing account is left alone and "" is returned.
func (s *Server) EnsureAdmin(ctx context.Context) (string, error) {
	if pw := s.cfg.AdminPassword; pw != "" {
		u, err := s.cfg.DB.UserByName(ctx, AdminUser)
		if err != nil && !errors.Is(err, db.ErrNoCredential) {
			return "", fmt.Errorf("ensuring admin account: %w", err)
		}
		if u != nil && u.Role == db.RoleAdmin && bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(pw)) == nil {
			return "", nil
		}
		h, err := HashPassword(pw)
		if err != nil {
			return "", fmt.Errorf("ensuring admin account: %w", err)
		}
		nu, err := s.cfg.DB.PutUser(ctx, AdminUser, h, db.RoleAdmin)
		if err != nil {
			return "", fmt.Errorf("ensuring admin account: %w", err)
		}
		if u != nil {
			if err := s.cfg.DB.DeleteUserSessions(ctx, nu.ID); err != nil {
				return "", fmt.Errorf("ensuring admin account: %w", err)
			}
		}
		return "", nil
	}
	pw := NewSecret()[:24]
	h, err := HashPassword(pw)
	if err != nil {
		return "", fmt.Errorf("ensuring admin account: %w", err)
	}
	created, err := s.cfg.DB.CreateUserIfAbsent(ctx, AdminUser, h, db.RoleAdmin)
	if err != nil {
		return "", fmt.Errorf("ensuring admin account: %w", err)
	}
	if !created {
		return "", nil
	}
	return pw, nil
}

// authorize is the gate every request passes: it finds the route's rule
// (a route without one is answered 404: fail closed), identifies the
// caller by Bearer token or session cookie, checks the role and, for
// state changes made with a cookie, the CSRF token.
func (s *Server) authorize(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		method := req.Method
		if method == http.MethodHead {
			method = http.MethodGet
		}
		rule, ok := s.rules[method+" "+c.Path()]
		if !ok {
			return next(c) // echo's 404/405 handler: no route matched
		}
		if rule == accessPublic {
			return next(c)
		}
		p, err := s.identify(c)
		if err != nil {
			return err
		}
		if p == nil {
			if method == http.MethodGet && !wantsJSON(c) {
				return c.Redirect(http.StatusSeeOther, "/login?next="+url.QueryEscape(req.URL.RequestURI()))
			}
			return errorf(http.StatusUnauthorized, "log in or send a valid API token (Authorization: Bearer)")
		}
		c.Set("principal", p)
		if rule == accessAdmin && !p.admin() {
			return errorf(http.StatusForbidden, "your account (%s) may look but not change anything", p.Role)
		}
		if method != http.MethodGet && !p.Bearer {
			// A signed-in browser's forms and JSON are small: bounded
			// before checkCSRF parses them (multipart would spool to disk).
			req.Body = http.MaxBytesReader(c.Response(), req.Body, maxJSONBody)
			if err := checkCSRF(c, p.CSRF); err != nil {
				return err
			}
		}
		return next(c)
	}
}

// identify finds the caller: Bearer token first, then the session cookie.
// nil means anonymous.
func (s *Server) identify(c echo.Context) (*principal, error) {
	ctx := c.Request().Context()
	if h := c.Request().Header.Get(echo.HeaderAuthorization); h != "" {
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if !ok || !strings.HasPrefix(tok, TokenPrefix) {
			return nil, errorf(http.StatusUnauthorized, "the Authorization header must be \"Bearer %s…\"", TokenPrefix)
		}
		t, err := s.cfg.DB.APITokenByHash(ctx, db.SecretHash(tok))
		if errors.Is(err, db.ErrNoCredential) {
			return nil, errorf(http.StatusUnauthorized, "this API token is unknown or revoked")
		}
		if err != nil {
			return nil, err
		}
		name := "token " + strconv.FormatInt(t.ID, 10)
		if t.Name != "" {
			name += " (" + t.Name + ")"
		}
		return &principal{Name: name, Role: t.Role, Bearer: true}, nil
	}
	ck, err := c.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return nil, nil
	}
	sess, err := s.cfg.DB.SessionByHash(ctx, db.SecretHash(ck.Value), s.now())
	if errors.Is(err, db.ErrNoCredential) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &principal{Name: sess.User.Username, Role: sess.User.Role, CSRF: sess.CSRFToken, cookie: ck.Value, userID: sess.User.ID}, nil
}

// checkCSRF compares the form field or header with want in constant time.
func checkCSRF(c echo.Context, want string) error {
	got := c.Request().Header.Get(csrfHeader)
	if got == "" {
		got = c.FormValue(csrfField)
	}
	if want == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return errorf(http.StatusForbidden, "the form is stale or was not sent by this site (CSRF token missing or wrong); reload the page and try again")
	}
	return nil
}

// clientAddr is the caller's address as the rate limits see it.
func (s *Server) clientAddr(c echo.Context) netip.Addr {
	a, err := netip.ParseAddr(c.RealIP())
	if err != nil {
		return netip.IPv4Unspecified()
	}
	return a
}

// limited applies the public rate limit.
func (s *Server) limited(h echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if ok, wait := s.public.allow(s.clientAddr(c)); !ok {
			return s.tooMany(c, wait)
		}
		return h(c)
	}
}

func (s *Server) tooMany(c echo.Context, wait interface{ Seconds() float64 }) error {
	secs := max(1, int(wait.Seconds()+0.999))
	c.Response().Header().Set("Retry-After", strconv.Itoa(secs))
	return errorf(http.StatusTooManyRequests, "too many requests from your address; try again in %d seconds", secs)
}

func (s *Server) setCookie(c echo.Context, name, value string, maxAge int) {
	c.SetCookie(&http.Cookie{
		Name:     name,
		Value:    value,
		Path:     "/",
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   s.cfg.SecureCookies,
		SameSite: http.SameSiteLaxMode,
	})
}

// loginPage shows the login form with a fresh double-submit token.
func (s *Server) loginPage(c echo.Context) error {
	return s.renderLogin(c, http.StatusOK, "")
}

func (s *Server) renderLogin(c echo.Context, status int, msg string) error {
	tok := NewSecret()
	s.setCookie(c, loginCookie, tok, 3600)
	lay := ui.Layout{Title: "Log in", CSRF: tok, Notices: s.cfg.Notices}
	return s.render(c, status, "login", ui.LoginPage{Layout: lay, Error: msg, Next: safeNext(c.QueryParam("next"))})
}

// safeNext keeps a post-login redirect on this site.
func safeNext(next string) string {
	// Browsers drop tabs and newlines inside URLs and read a backslash as
	// a slash, so "/\t/evil.example" would become "//evil.example".
	for _, r := range next {
		if r < 0x20 || r == 0x7f || r == '\\' {
			return "/"
		}
	}
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || len(next) > 2048 {
		return "/"
	}
	return next
}

// readLoginForm parses the login form's body: URL-encoded only, and at
// most maxLoginBody bytes, refused before anything reads it when the
// Content-Length says more. Multipart is refused rather than bounded: the
// form never sends it, and its parser spools large parts to disk.
func readLoginForm(c echo.Context) error {
	req := c.Request()
	mt, _, err := mime.ParseMediaType(req.Header.Get(echo.HeaderContentType))
	if err != nil || mt != echo.MIMEApplicationForm {
		return errorf(http.StatusUnsupportedMediaType, "the login form is sent as %s, not %q", echo.MIMEApplicationForm, clip(mt))
	}
	if req.ContentLength > maxLoginBody {
		return errorf(http.StatusRequestEntityTooLarge, "the login form is larger than %d bytes", maxLoginBody)
	}
	req.Body = http.MaxBytesReader(c.Response(), req.Body, maxLoginBody)
	if err := req.ParseForm(); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return errorf(http.StatusRequestEntityTooLarge, "the login form is larger than %d bytes", maxLoginBody)
		}
		return errorf(http.StatusBadRequest, "the login form could not be read: %s", clip(err.Error()))
	}
	return nil
}

// dummyHash is what an unknown user name's password is compared with, so
// that every failed login costs one bcrypt comparison of HashPassword's
// cost: an unknown name answered in 3 ms and a known one in 120-150 ms,
// which told a stranger which names exist. It is the hash of a random
// password nobody kept; a match would still be refused (no user).
const dummyHash = "$2a$10$xc380xvIv/7rAFSNpnCf0eF9BepBIn7Mc1fMHJhtCCl.tzIqqzq/6"

// checkPassword compares pw with u's hash, or with dummyHash when there is
// no such user or its hash is not bcrypt's: exactly one comparison on every
// path, and false unless u exists and pw is its password.
func (s *Server) checkPassword(u *db.User, pw string) bool {
	hash := dummyHash
	if u != nil {
		if _, err := bcrypt.Cost([]byte(u.PasswordHash)); err == nil {
			hash = u.PasswordHash
		}
	}
	// bcrypt reads maxPasswordBytes at most; a longer password is
	// refused after the same comparison of its prefix.
	match := s.compareHash([]byte(hash), []byte(pw[:min(len(pw), maxPasswordBytes)])) == nil
	return match && u != nil && hash == u.PasswordHash && len(pw) <= maxPasswordBytes
}

// loginSubmit checks the password; rate-limited per address, because
// that is what a password guesser spends.
func (s *Server) loginSubmit(c echo.Context) error {
	if ok, wait := s.login.allow(s.clientAddr(c)); !ok {
		return s.tooMany(c, wait)
	}
	if err := readLoginForm(c); err != nil {
		return err
	}
	form := c.Request().PostForm
	ck, err := c.Cookie(loginCookie)
	if err != nil || ck.Value == "" || subtle.ConstantTimeCompare([]byte(ck.Value), []byte(form.Get(csrfField))) != 1 {
		return s.renderLogin(c, http.StatusForbidden, "The login form expired; please try again.")
	}
	ctx := c.Request().Context()
	name, pw := form.Get("username"), form.Get("password")
	u, err := s.cfg.DB.UserByName(ctx, name)
	if err != nil && !errors.Is(err, db.ErrNoCredential) {
		return err
	}
	if !s.checkPassword(u, pw) {
		s.log.WarnContext(ctx, "Login failed", "username", clip(name), "remote_addr", clip(c.RealIP()))
		return s.renderLogin(c, http.StatusUnauthorized, "Wrong user name or password.")
	}
	// Expired sessions are swept at each login: logins are rare and
	// rate-limited, so the table stays small without a background job.
	if _, err := s.cfg.DB.DeleteExpiredSessions(ctx, s.now()); err != nil {
		return err
	}
	tok := NewSecret()
	if err := s.cfg.DB.CreateSession(ctx, db.SecretHash(tok), u.ID, NewSecret(), s.now().Add(s.cfg.SessionTTL), c.RealIP()); err != nil {
		return err
	}
	s.setCookie(c, sessionCookie, tok, int(s.cfg.SessionTTL.Seconds()))
	s.setCookie(c, loginCookie, "", -1)
	s.log.InfoContext(ctx, "Logged in", "username", clip(u.Username), "remote_addr", clip(c.RealIP()))
	return c.Redirect(http.StatusSeeOther, safeNext(form.Get("next")))
}

// logout ends the session.
func (s *Server) logout(c echo.Context) error {
	if p := principalOf(c); p != nil && p.cookie != "" {
		if err := s.cfg.DB.DeleteSession(c.Request().Context(), db.SecretHash(p.cookie)); err != nil {
			return err
		}
	}
	s.setCookie(c, sessionCookie, "", -1)
	return c.Redirect(http.StatusSeeOther, "/login")
}
