package api

import (
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/ui"
)

// The pages that manage accounts and API tokens (admins) and one's own
// password (everyone): what "tlsrpt user" and "tlsrpt token" do, for an
// administrator who has no shell on the host. Passwords are stored as
// bcrypt hashes and tokens as SHA-256, as the CLI stores them; a generated
// password or a new token is shown once, on the answer to the form.

// MinPasswordBytes is the shortest password the pages take. Generated
// passwords (here and in "tlsrpt user add") are 24 characters.
const MinPasswordBytes = 12

// validUsername is the account name the CLI takes ("tlsrpt user add"):
// printable, short, and safe in a URL path.
var validUsername = regexp.MustCompile(`^[A-Za-z0-9._@-]{1,64}$`)

// usernameParam is the :name of a users route.
func usernameParam(c echo.Context) (string, error) {
	raw := c.Param("name")
	if u, err := url.PathUnescape(raw); err == nil {
		raw = u
	}
	if !validUsername.MatchString(raw) {
		return "", errorf(http.StatusBadRequest, "%q is not a user name (letters, digits, . _ @ -, at most 64)", clip(raw))
	}
	return raw, nil
}

// roleValue reads the form's role.
func roleValue(c echo.Context) (string, error) {
	r := c.FormValue("role")
	if r != db.RoleAdmin && r != db.RoleViewer {
		return "", errorf(http.StatusBadRequest, "the role must be viewer or admin, not %q", clip(r))
	}
	return r, nil
}

// checkNewPassword says what is wrong with a chosen password, "" if
// nothing.
func checkNewPassword(pw string) string {
	switch {
	case len(pw) < MinPasswordBytes:
		return "The password is shorter than " + strconv.Itoa(MinPasswordBytes) + " characters."
	case len(pw) > maxPasswordBytes:
		return "The password is longer than " + strconv.Itoa(maxPasswordBytes) + " bytes (bcrypt ignores the rest)."
	}
	return ""
}

// formPassword is the form's password field, or a generated one when it
// is empty (generated true: show it once).
func formPassword(c echo.Context) (pw string, generated bool, err error) {
	pw = c.FormValue("password")
	if pw == "" {
		return NewSecret()[:24], true, nil
	}
	if msg := checkNewPassword(pw); msg != "" {
		return "", false, errorf(http.StatusBadRequest, "%s", msg)
	}
	return pw, false, nil
}

// self says whether name is the caller's own account.
func self(c echo.Context, name string) bool {
	p := principalOf(c)
	return p != nil && !p.Bearer && p.Name == name
}

// noStore keeps a page that shows a secret out of every cache.
func noStore(c echo.Context) {
	c.Response().Header().Set("Cache-Control", "no-store")
}

// usersPage lists the accounts with the forms that change them.
func (s *Server) usersPage(c echo.Context) error {
	return s.renderUsers(c, "", "")
}

func (s *Server) renderUsers(c echo.Context, shownFor, shown string) error {
	us, err := s.cfg.DB.Users(c.Request().Context())
	if err != nil {
		return err
	}
	page := ui.UsersPage{Layout: s.layout(c, "Users", "settings"), Shown: shown, ShownFor: shownFor, MinPassword: MinPasswordBytes}
	for _, u := range us {
		page.Users = append(page.Users, ui.UserRow{Name: u.Username, Role: u.Role, Self: self(c, u.Username)})
	}
	if shown != "" {
		noStore(c)
	}
	return s.render(c, http.StatusOK, "users", page)
}

// addUserForm creates an account; an existing name is refused rather than
// overwritten (that is a reset, with its own form).
func (s *Server) addUserForm(c echo.Context) error {
	name := c.FormValue("username")
	if !validUsername.MatchString(name) {
		return errorf(http.StatusBadRequest, "%q is not a user name (letters, digits, . _ @ -, at most 64)", clip(name))
	}
	role, err := roleValue(c)
	if err != nil {
		return err
	}
	pw, generated, err := formPassword(c)
	if err != nil {
		return err
	}
	hash, err := HashPassword(pw)
	if err != nil {
		return err
	}
	created, err := s.cfg.DB.CreateUserIfAbsent(c.Request().Context(), name, hash, role)
	if err != nil {
		return err
	}
	if !created {
		return errorf(http.StatusConflict, "a user named %q exists; reset its password or change its role instead", name)
	}
	if err := s.audit(c, "user.add", "", map[string]any{"user": name, "role": role, "generated": generated}); err != nil {
		return err
	}
	if generated {
		return s.renderUsers(c, name, pw)
	}
	return c.Redirect(http.StatusSeeOther, "/settings/users?done=user-added")
}

// userRoleForm changes an account's role; the last admin stays one.
func (s *Server) userRoleForm(c echo.Context) error {
	name, err := usernameParam(c)
	if err != nil {
		return err
	}
	role, err := roleValue(c)
	if err != nil {
		return err
	}
	if err := s.userChangeError(name, s.cfg.DB.SetUserRole(c.Request().Context(), name, role)); err != nil {
		return err
	}
	if err := s.audit(c, "user.role", "", map[string]string{"user": name, "role": role}); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/settings/users?done=user-role")
}

// resetPasswordForm sets another account's password (given, or generated
// and shown once) and ends its sessions. One's own goes through /account,
// which wants the current password.
func (s *Server) resetPasswordForm(c echo.Context) error {
	name, err := usernameParam(c)
	if err != nil {
		return err
	}
	if self(c, name) {
		return errorf(http.StatusConflict, "change your own password under Your account (/account): it asks for the current one")
	}
	pw, generated, err := formPassword(c)
	if err != nil {
		return err
	}
	hash, err := HashPassword(pw)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	u, err := s.cfg.DB.SetUserPassword(ctx, name, hash)
	if err := s.userChangeError(name, err); err != nil {
		return err
	}
	if err := s.cfg.DB.DeleteUserSessions(ctx, u.ID); err != nil {
		return err
	}
	if err := s.audit(c, "user.password", "", map[string]any{"user": name, "generated": generated}); err != nil {
		return err
	}
	if generated {
		return s.renderUsers(c, name, pw)
	}
	return c.Redirect(http.StatusSeeOther, "/settings/users?done=user-password")
}

// removeUserForm removes an account, never the caller's own nor the last
// admin.
func (s *Server) removeUserForm(c echo.Context) error {
	name, err := usernameParam(c)
	if err != nil {
		return err
	}
	if self(c, name) {
		return errorf(http.StatusConflict, "you cannot remove your own account; another admin can")
	}
	if err := s.userChangeError(name, s.cfg.DB.DeleteUser(c.Request().Context(), name)); err != nil {
		return err
	}
	if err := s.audit(c, "user.remove", "", map[string]string{"user": name}); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/settings/users?done=user-removed")
}

// userChangeError turns the store's refusals into answers.
func (s *Server) userChangeError(name string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, db.ErrNoCredential):
		return errorf(http.StatusNotFound, "no user %q", name)
	case errors.Is(err, db.ErrLastAdmin):
		return errorf(http.StatusConflict, "%s is the last admin: make another account admin first", name)
	}
	return err
}

// tokensPage lists the API tokens, revoked ones included.
func (s *Server) tokensPage(c echo.Context) error {
	return s.renderTokens(c, "", 0)
}

func (s *Server) renderTokens(c echo.Context, created string, id int64) error {
	ts, err := s.cfg.DB.AllAPITokens(c.Request().Context())
	if err != nil {
		return err
	}
	stamp := func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	}
	page := ui.TokensPage{Layout: s.layout(c, "API tokens", "settings"), Created: created, CreatedID: id}
	for _, t := range ts {
		page.Tokens = append(page.Tokens, ui.TokenRow{ID: t.ID, Name: t.Name, Role: t.Role,
			Created: t.CreatedAt.UTC().Format(time.RFC3339), LastUsed: stamp(t.LastUsedAt), Revoked: stamp(t.RevokedAt)})
	}
	if created != "" {
		noStore(c)
	}
	return s.render(c, http.StatusOK, "tokens", page)
}

// createTokenForm makes an API token and shows it on the answer, the only
// time it is ever shown; the store keeps its SHA-256.
func (s *Server) createTokenForm(c echo.Context) error {
	role, err := roleValue(c)
	if err != nil {
		return err
	}
	name := c.FormValue("name")
	if len(name) > 200 {
		return errorf(http.StatusBadRequest, "the name is longer than 200 characters")
	}
	tok := NewAPIToken()
	id, err := s.cfg.DB.CreateAPIToken(c.Request().Context(), db.SecretHash(tok), name, role)
	if err != nil {
		return err
	}
	if err := s.audit(c, "token.create", "", map[string]any{"id": id, "role": role, "name": name}); err != nil {
		return err
	}
	return s.renderTokens(c, tok, id)
}

// revokeTokenForm revokes a token: requests bearing it are refused from
// then on.
func (s *Server) revokeTokenForm(c echo.Context) error {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		return errorf(http.StatusBadRequest, "%q is not a token id", clip(c.Param("id")))
	}
	if err := s.cfg.DB.RevokeAPIToken(c.Request().Context(), id); err != nil {
		if errors.Is(err, db.ErrNoCredential) {
			return errorf(http.StatusNotFound, "no active token %d", id)
		}
		return err
	}
	if err := s.audit(c, "token.revoke", "", map[string]int64{"id": id}); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/settings/tokens?done=token-revoked")
}

// accountPage is the caller's own account: the password form.
func (s *Server) accountPage(c echo.Context) error {
	return s.renderAccount(c, http.StatusOK, "")
}

func (s *Server) renderAccount(c echo.Context, status int, msg string) error {
	p := principalOf(c)
	page := ui.AccountPage{Layout: s.layout(c, "Your account", "account"), Token: p.Bearer, Error: msg, MinPassword: MinPasswordBytes}
	return s.render(c, status, "account", page)
}

// accountPasswordForm changes the caller's own password. It wants the
// current one (a session left open on a shared machine must not be enough
// to take the account over), and ends the account's other sessions. It is
// rate-limited like the login: it is a password oracle too.
func (s *Server) accountPasswordForm(c echo.Context) error {
	p := principalOf(c)
	if p.Bearer {
		return errorf(http.StatusBadRequest, "an API token has no password")
	}
	if ok, wait := s.login.allow(s.clientAddr(c)); !ok {
		return s.tooMany(c, wait)
	}
	ctx := c.Request().Context()
	u, err := s.cfg.DB.UserByName(ctx, p.Name)
	if err != nil {
		return err
	}
	if !s.checkPassword(u, c.FormValue("current")) {
		return s.renderAccount(c, http.StatusUnprocessableEntity, "The current password is wrong; nothing was changed.")
	}
	pw := c.FormValue("new")
	if msg := checkNewPassword(pw); msg != "" {
		return s.renderAccount(c, http.StatusUnprocessableEntity, msg)
	}
	if pw != c.FormValue("again") {
		return s.renderAccount(c, http.StatusUnprocessableEntity, "The two new passwords differ; nothing was changed.")
	}
	hash, err := HashPassword(pw)
	if err != nil {
		return err
	}
	if _, err := s.cfg.DB.SetUserPassword(ctx, u.Username, hash); err != nil {
		return err
	}
	ended, err := s.cfg.DB.DeleteOtherSessions(ctx, u.ID, db.SecretHash(p.cookie))
	if err != nil {
		return err
	}
	if err := s.audit(c, "account.password", "", map[string]any{"user": u.Username, "other_sessions_ended": ended}); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/account?done=password-changed")
}
