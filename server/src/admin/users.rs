//! `/admin/api/v1/users`: list (filtered, cursor-paginated), read, disable and enable,
//! grant and take away roles, reset second factors, list and end logins. Every route asks the
//! role policies first; a refusal is a problem+json 403 (or a step-up 401) and is audited.

use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::accounts;
use super::caller::{Caller, authenticate};
use super::error::ApiError;
use super::{SCOPE_USERS, allow};
use crate::domain::{OrgPath, OrgUnit, RoleName, User, UserId, UserStatus, Username};
use crate::oidc::Issuer;
use crate::policy::actions::{
    AssignRole, CreateUser, DisableUser, EnableUser, ListUsers, ReadUser, ResetFactors, RevokeSessions,
    UpdateUser,
};
use crate::policy::{AdminAction, Capability, Person, Target};
use crate::state::AppState;
use crate::store::{DbError, org_units, roles, users};

/// An account as the admin API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserView {
    pub id: String,
    pub username: String,
    pub display_name: String,
    /// `active` or `disabled`.
    #[schema(value_type = String, examples("active"))]
    pub status: &'static str,
    /// The path of the account's organisation unit.
    pub org_unit: Option<String>,
    pub roles: Vec<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub has_password: bool,
    pub must_change_password: bool,
    pub password_changed_at: Option<DateTime<Utc>>,
    pub locked_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl UserView {
    fn of(u: &User, org: Option<String>, roles: &[RoleName]) -> Self {
        Self {
            id: u.id.to_string(),
            username: u.username.to_string(),
            display_name: u.display_name.clone(),
            status: u.status.as_str(),
            org_unit: org,
            roles: roles.iter().map(|r| r.as_str().to_owned()).collect(),
            email: u.email.as_ref().map(|e| e.as_str().to_owned()),
            phone: u.phone.as_ref().map(|p| p.as_str().to_owned()),
            has_password: u.has_password,
            must_change_password: u.must_change_password,
            password_changed_at: u.password_changed_at,
            locked_until: u.locked_until,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }

    fn of_person(u: &User, p: &Person) -> Self {
        Self::of(u, p.org.first().map(|o| o.path.to_string()), &p.roles)
    }
}

/// A page of accounts.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserPage {
    pub items: Vec<UserView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// The account `id` as the policies see it; 404 when there is none.
async fn target(state: &AppState, id: &str) -> Result<(User, Person), ApiError> {
    let not_found = || ApiError::NotFound("No such account.".into());
    // Ids are UUIDs: anything else names no account (and never reaches the database).
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(not_found());
    }
    let uid = UserId::from_string(id.to_owned());
    state
        .core
        .db
        .run(move |c| {
            let Some(user) = users::find(c, &uid)? else { return Ok(None) };
            let person = crate::policy::load_person(c, &user)?;
            Ok::<_, DbError>(Some((user, person)))
        })
        .await
        .map_err(|e| ApiError::unexpected(&e))?
        .ok_or_else(not_found)
}

/// The caller, the account `id` and the capability to do `A` to it: what every account route
/// starts with.
async fn on_account<A: AdminAction>(
    state: &AppState,
    issuer: &Issuer,
    req: &HttpRequest,
    id: &str,
) -> Result<(Caller, User, Person, Capability<A>), ApiError> {
    let caller = authenticate(state, issuer, req, SCOPE_USERS).await?;
    let (user, person) = target(state, id).await?;
    let cap = allow(state, &caller, Target::Person(&person)).await?;
    Ok((caller, user, person, cap))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only accounts in this organisation unit's subtree (a path); default: the caller's unit.
    pub org: Option<String>,
    /// Only holders of this role.
    pub role: Option<String>,
    /// `active` or `disabled`.
    pub status: Option<String>,
    /// Case-insensitive text in the username or display name.
    pub q: Option<String>,
    pub cursor: Option<String>,
    /// 1 to 200; default 50.
    pub limit: Option<i64>,
}

fn decode_cursor(c: &str) -> Result<String, ApiError> {
    let bad = || ApiError::Invalid("The cursor is not one this API returned.".into());
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(c).map_err(|_| bad())?;
    let s = String::from_utf8(bytes).map_err(|_| bad())?;
    Username::parse(&s).map_err(|_| bad())?;
    Ok(s)
}

fn encode_cursor(username: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(username.as_bytes())
}

/// Accounts of an organisation unit's subtree, filtered, one page at a time.
#[utoipa::path(get, path = "/users", tag = "users", params(ListQuery),
    responses((status = 200, description = "A page of accounts.", body = UserPage)),
    security(("bearer" = ["admin.users"])))]
pub async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let caller = authenticate(&state, &issuer, &req, SCOPE_USERS).await?;
    let q = query.into_inner();
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::Invalid("limit must be between 1 and 200.".into()));
    }
    let status = q
        .status
        .as_deref()
        .map(UserStatus::parse)
        .transpose()
        .map_err(|_| ApiError::Invalid("status must be active or disabled.".into()))?;
    let role = q
        .role
        .as_deref()
        .map(RoleName::parse)
        .transpose()
        .map_err(|e| ApiError::Invalid(format!("role: {e}.")))?;
    let text = match q.q {
        Some(t) if t.chars().count() > 100 || t.chars().any(char::is_control) => {
            return Err(ApiError::Invalid("q is at most 100 characters, without control characters.".into()));
        }
        Some(t) if t.trim().is_empty() => None,
        other => other,
    };
    let after = q.cursor.as_deref().map(decode_cursor).transpose()?;
    // The subtree listed: the one asked for, or the caller's own unit.
    let chain: Vec<OrgUnit> = match q.org.as_deref() {
        Some(p) => {
            let path = OrgPath::parse(p).map_err(|e| ApiError::Invalid(format!("org: {e}.")))?;
            let found = super::unit_chain(&state, &path).await?;
            if found.is_empty() {
                return Err(ApiError::NotFound(format!("No organisation unit '{p}'.")));
            }
            found
        }
        None => caller.person.org.clone(),
    };
    if chain.is_empty() {
        return Err(ApiError::Invalid("Name the organisation unit to list with org=<path>.".into()));
    }
    let _cap: Capability<ListUsers> = allow(&state, &caller, Target::Org(&chain)).await?;
    let subtree = chain.first().map(|u| u.path.clone());
    let filter = users::UserFilter { org_subtree: subtree, status, text, after_username: after, role };
    let (found, more, paths, held) = state
        .core
        .db
        .run(move |c| {
            // One more than a page: whether there is a next page, without an empty last one.
            let mut found = users::list(c, &filter, limit + 1)?;
            let more = found.len() as i64 > limit;
            found.truncate(usize::try_from(limit).unwrap_or(0));
            let units: Vec<_> = found.iter().filter_map(|u| u.org_unit_id.clone()).collect();
            let paths = org_units::paths_of(c, &units)?;
            let ids: Vec<UserId> = found.iter().map(|u| u.id.clone()).collect();
            let held = roles::roles_of_many(c, &ids)?;
            Ok::<_, DbError>((found, more, paths, held))
        })
        .await
        .map_err(|e| ApiError::unexpected(&e))?;
    let next_cursor = if more { found.last().map(|u| encode_cursor(u.username.as_str())) } else { None };
    let items = found
        .iter()
        .map(|u| {
            let org = u.org_unit_id.as_ref().and_then(|id| paths.get(id).cloned());
            UserView::of(u, org, held.get(&u.id).map_or(&[][..], Vec::as_slice))
        })
        .collect();
    Ok(HttpResponse::Ok().json(UserPage { items, next_cursor }))
}

/// One account, with its unit and roles.
#[utoipa::path(get, path = "/users/{id}", tag = "users", params(("id" = String, Path, description = "The account's id.")),
    responses((status = 200, description = "The account.", body = UserView)),
    security(("bearer" = ["admin.users"])))]
pub async fn read(
    req: HttpRequest,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (_, user, person, _cap) = on_account::<ReadUser>(&state, &issuer, &req, &id).await?;
    Ok(HttpResponse::Ok().json(UserView::of_person(&user, &person)))
}

/// Why an account is disabled or its factors reset.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    pub reason: Option<String>,
}

/// An optional JSON body, strictly: none at all, or `application/json` of the right shape.
fn optional_reason(req: &HttpRequest, body: &[u8]) -> Result<Option<ReasonBody>, ApiError> {
    if body.is_empty() {
        return Ok(None);
    }
    let json = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return Err(ApiError::WrongType("Send the body as application/json.".into()));
    }
    serde_json::from_slice(body)
        .map(Some)
        .map_err(|_| ApiError::Invalid("The request body is not valid JSON of the expected shape.".into()))
}

fn reason_text(body: Option<ReasonBody>, required: bool) -> Result<Option<String>, ApiError> {
    let reason = body.and_then(|b| b.reason).map(|r| r.trim().to_owned()).filter(|r| !r.is_empty());
    match reason {
        Some(r) if r.chars().count() > 500 || r.chars().any(char::is_control) => {
            Err(ApiError::Invalid("reason is at most 500 characters, on one line.".into()))
        }
        None if required => Err(ApiError::Invalid("Say why in reason (at most 500 characters).".into())),
        other => Ok(other),
    }
}

/// Disables the account: its sessions and tokens die at once.
#[utoipa::path(post, path = "/users/{id}/disable", tag = "users", params(("id" = String, Path, description = "The account's id.")),
    request_body(content = Option<ReasonBody>, description = "Why (optional).", content_type = "application/json"),
    responses((status = 200, description = "The account, disabled.", body = UserView)),
    security(("bearer" = ["admin.users"])))]
pub async fn disable(
    req: HttpRequest,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (caller, _, person, cap) = on_account::<DisableUser>(&state, &issuer, &req, &id).await?;
    let reason = reason_text(optional_reason(&req, &body)?, false)?;
    let user = accounts::disable(&state, &caller, cap, reason).await?;
    Ok(HttpResponse::Ok().json(UserView::of_person(&user, &person)))
}

/// Enables the account (old sessions and tokens stay dead).
#[utoipa::path(post, path = "/users/{id}/enable", tag = "users", params(("id" = String, Path, description = "The account's id.")),
    responses((status = 200, description = "The account, active.", body = UserView)),
    security(("bearer" = ["admin.users"])))]
pub async fn enable(
    req: HttpRequest,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (caller, _, person, cap) = on_account::<EnableUser>(&state, &issuer, &req, &id).await?;
    let user = accounts::enable(&state, &caller, cap).await?;
    Ok(HttpResponse::Ok().json(UserView::of_person(&user, &person)))
}

/// Grants (`grant`) or takes away the role in the path, decided as `role.assign` on the
/// account, and answers the account as it is afterwards.
async fn change_role(
    req: HttpRequest,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
    path: web::Path<(String, String)>,
    grant: bool,
) -> Result<HttpResponse, ApiError> {
    let caller = authenticate(&state, &issuer, &req, SCOPE_USERS).await?;
    let (id, role) = path.into_inner();
    let role = RoleName::parse(&role).map_err(|e| ApiError::Invalid(format!("role: {e}.")))?;
    let (_, person) = target(&state, &id).await?;
    let cap: Capability<AssignRole> =
        allow(&state, &caller, Target::Grant { role: &role, to: &person }).await?;
    if grant {
        accounts::grant(&state, &caller, cap).await?;
    } else {
        accounts::revoke_role(&state, &caller, cap).await?;
    }
    let (user, person) = target(&state, &id).await?;
    Ok(HttpResponse::Ok().json(UserView::of_person(&user, &person)))
}

/// Grants a role.
#[utoipa::path(put, path = "/users/{id}/roles/{role}", tag = "users", params(("id" = String, Path, description = "The account's id."), ("role" = String, Path, description = "A role name, such as vaccinator.")),
    responses((status = 200, description = "The account with its roles.", body = UserView)),
    security(("bearer" = ["admin.users"])))]
pub async fn grant_role(
    req: HttpRequest,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    change_role(req, state, issuer, path, true).await
}

/// Takes a role away.
#[utoipa::path(delete, path = "/users/{id}/roles/{role}", tag = "users", params(("id" = String, Path, description = "The account's id."), ("role" = String, Path, description = "A role name, such as vaccinator.")),
    responses((status = 200, description = "The account with its roles.", body = UserView)),
    security(("bearer" = ["admin.users"])))]
pub async fn revoke_role(
    req: HttpRequest,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    change_role(req, state, issuer, path, false).await
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Cleared {
    pub cleared: bool,
}

/// Clears the account's authenticator app and recovery codes, and ends its logins.
#[utoipa::path(post, path = "/users/{id}/factors/reset", tag = "users", params(("id" = String, Path, description = "The account's id.")),
    request_body(content = ReasonBody, description = "Why (required).", content_type = "application/json"),
    responses((status = 200, description = "Whether there was something to clear.", body = Cleared)),
    security(("bearer" = ["admin.users"])))]
pub async fn reset_factors(
    req: HttpRequest,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (caller, _, _, cap) = on_account::<ResetFactors>(&state, &issuer, &req, &id).await?;
    let reason = reason_text(optional_reason(&req, &body)?, true)?.unwrap_or_default();
    let cleared = accounts::reset_factors(&state, &caller, cap, reason).await?;
    Ok(HttpResponse::Ok().json(Cleared { cleared }))
}

/// One open login, without anything that could resume it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LoginView {
    /// A stable handle for this login (not its session id).
    pub id: String,
    pub signed_in_at: Option<DateTime<Utc>>,
}

/// The account's open logins.
#[utoipa::path(get, path = "/users/{id}/sessions", tag = "users", params(("id" = String, Path, description = "The account's id.")),
    responses((status = 200, description = "The open logins.", body = LoginList)),
    security(("bearer" = ["admin.users"])))]
pub async fn sessions(
    req: HttpRequest,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (_, user, _, _cap) = on_account::<ReadUser>(&state, &issuer, &req, &id).await?;
    let logins =
        crate::login::session::logins_of(&state, &user.id).await.map_err(|e| ApiError::unexpected(&e))?;
    let items: Vec<LoginView> = logins
        .iter()
        .map(|(sid, rec)| LoginView {
            id: state
                .core
                .keys
                .digester
                .digest("admin-login-handle", sid.as_bytes())
                .chars()
                .take(16)
                .collect(),
            signed_in_at: DateTime::from_timestamp_micros(rec.auth_time_us),
        })
        .collect();
    Ok(HttpResponse::Ok().json(LoginList { items }))
}

/// The open logins of an account.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LoginList {
    pub items: Vec<LoginView>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Ended {
    pub ended: usize,
}

/// Ends every login of the account, with its refresh and access tokens.
#[utoipa::path(delete, path = "/users/{id}/sessions", tag = "users", params(("id" = String, Path, description = "The account's id.")),
    responses((status = 200, description = "How many logins were open.", body = Ended)),
    security(("bearer" = ["admin.users"])))]
pub async fn revoke_sessions(
    req: HttpRequest,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (caller, _, _, cap) = on_account::<RevokeSessions>(&state, &issuer, &req, &id).await?;
    let ended = accounts::revoke_sessions(&state, &caller, cap).await?;
    Ok(HttpResponse::Ok().json(Ended { ended }))
}

/// A new account. It has no password: its first one comes through a reset link (an
/// onboarding campaign).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    pub username: String,
    pub display_name: String,
    /// The path of the account's organisation unit, such as `in/ka/blr/phc-1`.
    pub org_unit: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
}

fn invalid(field: &str) -> impl Fn(crate::domain::Invalid) -> ApiError + '_ {
    move |e| ApiError::Invalid(format!("{field}: {e}."))
}

/// The unit at `path` with its chain up to the root; 400 when there is none.
async fn unit_chain(state: &AppState, path: &str) -> Result<Vec<OrgUnit>, ApiError> {
    let p = OrgPath::parse(path).map_err(invalid("org_unit"))?;
    let chain = super::unit_chain(state, &p).await?;
    if chain.is_empty() {
        return Err(ApiError::Invalid(format!("org_unit: there is no organisation unit '{path}'.")));
    }
    Ok(chain)
}

/// Creates an account in a unit the caller administers, with roles the caller may grant.
#[utoipa::path(post, path = "/users", tag = "users", request_body = NewAccount,
    responses((status = 201, description = "The account, without a password yet.", body = UserView)),
    security(("bearer" = ["admin.users"])))]
pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
    body: web::Json<NewAccount>,
) -> Result<HttpResponse, ApiError> {
    use crate::domain::{Email, NewUser, Phone};
    let caller = authenticate(&state, &issuer, &req, SCOPE_USERS).await?;
    let n = body.into_inner();
    let username = Username::parse(&n.username).map_err(invalid("username"))?;
    let display_name = NewUser::check_display_name(&n.display_name).map_err(invalid("display_name"))?;
    let email = n.email.as_deref().map(Email::parse).transpose().map_err(invalid("email"))?;
    let phone = n.phone.as_deref().map(Phone::parse).transpose().map_err(invalid("phone"))?;
    let mut roles_wanted: Vec<RoleName> =
        n.roles.iter().map(|r| RoleName::parse(r)).collect::<Result<_, _>>().map_err(invalid("roles"))?;
    roles_wanted.sort();
    roles_wanted.dedup();
    if roles_wanted.len() > 16 {
        return Err(ApiError::Invalid("roles: at most 16.".into()));
    }
    let chain = unit_chain(&state, &n.org_unit).await?;
    // The account as it will be, for the policies: where it sits and what it will hold.
    let id = UserId::generate();
    let person = Person {
        id: id.clone(),
        username: username.as_str().to_owned(),
        active: true,
        roles: roles_wanted.clone(),
        org: chain.clone(),
    };
    let cap: Capability<CreateUser> = allow(&state, &caller, Target::Person(&person)).await?;
    for role in &roles_wanted {
        let _grant: Capability<AssignRole> =
            allow(&state, &caller, Target::Grant { role, to: &person }).await?;
    }
    let new = NewUser {
        username,
        display_name,
        phone,
        email,
        org_unit_id: chain.first().map(|u| u.id.clone()),
        password_hash: None,
        must_change_password: true,
    };
    let user = accounts::create(&state, &caller, cap, new, roles_wanted, person.clone()).await?;
    let person = Person { id: user.id.clone(), ..person };
    Ok(HttpResponse::Created().json(UserView::of_person(&user, &person)))
}

/// Changes to an account; absent fields stay, an empty email or phone clears it.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountChange {
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// Move the account to the unit at this path (the caller must administer both units).
    pub org_unit: Option<String>,
}

/// Changes an account's name, email, phone or unit.
#[utoipa::path(patch, path = "/users/{id}", tag = "users", params(("id" = String, Path, description = "The account's id.")),
    request_body = AccountChange,
    responses((status = 200, description = "The account.", body = UserView)),
    security(("bearer" = ["admin.users"])))]
pub async fn update(
    req: HttpRequest,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
    id: web::Path<String>,
    body: web::Json<AccountChange>,
) -> Result<HttpResponse, ApiError> {
    use crate::domain::{Email, NewUser, Phone};
    let (caller, _, person, cap) = on_account::<UpdateUser>(&state, &issuer, &req, &id).await?;
    let c = body.into_inner();
    let cleared_or = |v: Option<String>| v.map(|s| if s.trim().is_empty() { None } else { Some(s) });
    let change = users::ProfileChange {
        display_name: c
            .display_name
            .as_deref()
            .map(NewUser::check_display_name)
            .transpose()
            .map_err(invalid("display_name"))?,
        email: cleared_or(c.email)
            .map(|e| e.as_deref().map(Email::parse).transpose())
            .transpose()
            .map_err(invalid("email"))?,
        phone: cleared_or(c.phone)
            .map(|p| p.as_deref().map(Phone::parse).transpose())
            .transpose()
            .map_err(invalid("phone"))?,
        org_unit_id: None,
    };
    let mut change = change;
    // The phone receives SMS codes and the email reset links: changing either is changing a
    // way in, decided (and stepped up) as a factor reset is.
    if change.phone.is_some() || change.email.is_some() {
        let _channel: Capability<ResetFactors> = allow(&state, &caller, Target::Person(&person)).await?;
    }
    let mut moved_to = None;
    if let Some(path) = c.org_unit {
        let chain = unit_chain(&state, &path).await?;
        // Moving: the caller must be allowed to update the account where it would be, too.
        let moved = Person { org: chain.clone(), ..person.clone() };
        let _there: Capability<UpdateUser> = allow(&state, &caller, Target::Person(&moved)).await?;
        change.org_unit_id = chain.first().map(|u| u.id.clone());
        moved_to = Some(chain);
    }
    let user = accounts::update(&state, &caller, cap, change, moved_to).await?;
    let (user, person) = target(&state, user.id.as_str()).await?;
    Ok(HttpResponse::Ok().json(UserView::of_person(&user, &person)))
}

/// The largest CSV an import takes.
pub const IMPORT_MAX_BYTES: usize = 16 << 20;

/// What an import did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Imported {
    pub imported: usize,
}

/// Imports accounts from CSV (`username,display_name,phone,email,org_unit,roles`, roles
/// separated by `;`), all or none: every row is checked, then every row asked of the policies
/// (creating the account where it sits, granting each role); a bad or refused row imports
/// nothing and is named with its line. The accounts have no password until a reset link
/// gives them one.
#[utoipa::path(post, path = "/users/import", tag = "users",
    request_body(content = String, description = "The CSV file.", content_type = "text/csv"),
    responses((status = 200, description = "How many accounts were created.", body = Imported)),
    security(("bearer" = ["admin.users"])))]
pub async fn import(
    req: HttpRequest,
    state: web::Data<AppState>,
    issuer: web::Data<Issuer>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    use std::collections::{HashMap, HashSet};

    use crate::cli::import::{BadRow, check, write_rows};
    let caller = authenticate(&state, &issuer, &req, SCOPE_USERS).await?;
    let csv = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/csv"));
    if !csv {
        return Err(ApiError::WrongType("Send the file as text/csv.".into()));
    }
    // Larger than other bodies: an import of 100,000 rows is a few megabytes.
    let body = match payload.to_bytes_limited(IMPORT_MAX_BYTES).await {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => {
            return Err(ApiError::TooLarge(format!("An import is at most {} MiB.", IMPORT_MAX_BYTES >> 20)));
        }
        Err(_) => return Err(ApiError::Invalid("The body could not be read.".into())),
    };
    let (units, known) = state
        .core
        .db
        .run(|c| {
            let units = org_units::list(c, None)?;
            let known: HashSet<RoleName> = roles::list(c)?.into_iter().map(|(r, _)| r).collect();
            Ok::<_, DbError>((units, known))
        })
        .await
        .map_err(|e| ApiError::unexpected(&e))?;
    let ids: HashMap<String, crate::domain::OrgUnitId> =
        units.iter().map(|u| (u.path.as_str().to_owned(), u.id.clone())).collect();
    let (rows, lines) =
        check(&body, &ids, &known).map_err(|rows| ApiError::Rows { forbidden: None, rows })?;
    if rows.users.is_empty() {
        return Err(ApiError::Invalid("The file holds no rows to import.".into()));
    }
    // Each row's unit with its chain to the root, from the one list of units.
    let by_id: HashMap<&crate::domain::OrgUnitId, &OrgUnit> = units.iter().map(|u| (&u.id, u)).collect();
    let chain_of = |id: &crate::domain::OrgUnitId| {
        let mut out = Vec::new();
        let mut next = by_id.get(id).copied();
        while let Some(u) = next {
            out.push(u.clone());
            next = u.parent_id.as_ref().and_then(|p| by_id.get(p).copied());
        }
        out
    };
    let people: Vec<(Person, Vec<RoleName>)> = rows
        .users
        .iter()
        .zip(&rows.roles)
        .map(|(user, held)| {
            let person = Person {
                id: UserId::generate(),
                username: user.username.as_str().to_owned(),
                active: true,
                roles: held.clone(),
                org: user.org_unit_id.as_ref().map(chain_of).unwrap_or_default(),
            };
            (person, held.clone())
        })
        .collect();
    // The first refusal of each row, if any: creating it where it sits, then each role.
    let refusal = |engine: &crate::policy::PolicyEngine,
                   admin: &Person,
                   person: &Person,
                   held: &[RoleName]| {
        engine.authorize::<CreateUser>(admin, &caller.login, Target::Person(person)).err().or_else(|| {
            held.iter().find_map(|role| {
                engine.authorize::<AssignRole>(admin, &caller.login, Target::Grant { role, to: person }).err()
            })
        })
    };
    let mut refused: Vec<BadRow> = Vec::new();
    let mut denials = Vec::new();
    let mut reasons = std::collections::BTreeSet::new();
    for ((person, held), (_, line)) in people.iter().zip(&lines) {
        match refusal(&state.core.policy, &caller.person, person, held) {
            Some(denied) => {
                refused.push(BadRow {
                    line: *line,
                    reason: format!("{} refused: {}", denied.act, denied.verdict.reason()),
                });
                denials.push(denied);
            }
            None => {
                let v = state.core.policy.admin(
                    crate::policy::Act::UserCreate,
                    &caller.person,
                    &caller.login,
                    Target::Person(person),
                );
                reasons.insert(v.reason());
            }
        }
    }
    if let Some(first) = denials.first().cloned() {
        super::audit_denial(&state, &caller, &first).await;
        // Every refusal would yield to a fresh login with the app: say how to step up.
        if denials.iter().all(|d| d.verdict.step_up) {
            return Err(first.into());
        }
        return Err(ApiError::Rows { forbidden: Some(first.act), rows: refused });
    }
    let usernames: Vec<&str> = people.iter().map(|(p, _)| p.username.as_str()).collect();
    let details = serde_json::json!({
        "from": "admin_api",
        "usernames": usernames,
        "decisions": reasons,
        "policy_version": state.core.policy.version(),
    });
    // Decided again inside the transaction, with the caller as they are then.
    let (engine, who) = (std::sync::Arc::clone(&state.core.policy), caller.clone());
    let recheck = move |c: &mut crate::store::AnyConnection| {
        users::lock(c, &[&who.user.id])?;
        let Some(admin) = users::find(c, &who.user.id)? else { return Ok(false) };
        let admin = crate::policy::load_person(c, &admin)?;
        Ok(people.iter().all(|(person, held)| {
            engine.authorize::<CreateUser>(&admin, &who.login, Target::Person(person)).is_ok()
                && held.iter().all(|role| {
                    engine
                        .authorize::<AssignRole>(&admin, &who.login, Target::Grant { role, to: person })
                        .is_ok()
                })
        }))
    };
    let written = write_rows(&state.core, &caller.actor(), rows, lines, details, recheck).await.map_err(|e| match e {
        DbError::Conflict(_) => {
            ApiError::Conflict("Another change got in the way (a username taken meanwhile, or the decision no longer holds); nothing was imported; try again.".into())
        }
        other => ApiError::unexpected(&other),
    })?;
    match written {
        Ok(imported) => Ok(HttpResponse::Ok().json(Imported { imported })),
        Err(rows) => Err(ApiError::Rows { forbidden: None, rows }),
    }
}
