//! The admin REST API under `/admin/api/v1`: JSON in and out, RFC 9457 problem+json errors,
//! Bearer access tokens that Pramaan issued to a person through an internal client, with the
//! admin scope of the resource. Every route asks the role policies before it acts (the
//! mutating functions take a [`crate::policy::Capability`]), and every refusal is audited.

mod accounts;
mod audit;
pub mod caller;
mod campaigns;
mod clients;
pub mod error;
pub mod openapi;
mod org_units;
mod policy;
mod users;

use actix_web::http::Method;
use actix_web::web;
use serde_json::json;

use crate::domain::{AuditEvent, Outcome};
use crate::policy::{Act, AdminAction, Capability, Denied, Subject, Target};
use crate::state::AppState;
use caller::Caller;

/// The base path of version 1.
pub const BASE: &str = "/admin/api/v1";

/// The scope an access token needs for the account routes.
pub const SCOPE_USERS: &str = "admin.users";
/// The scope an access token needs for the policy routes.
pub const SCOPE_POLICY: &str = "admin.policy";
/// The scope an access token needs for the client routes.
pub const SCOPE_CLIENTS: &str = "admin.clients";
/// The scope an access token needs to read the audit trail.
pub const SCOPE_AUDIT: &str = "admin.audit";
/// The scope an access token needs for the password-reset campaign routes.
pub const SCOPE_CAMPAIGNS: &str = "admin.campaigns";

/// One admin route: what it is, the scope its token needs and the policy action it asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub method: &'static str,
    /// Relative to [`BASE`], with `{id}`-style parameters.
    pub path: &'static str,
    pub scope: &'static str,
    pub act: Act,
}

/// Declares every admin route once: the handler registered, and its entry in [`ROUTES`].
macro_rules! admin_routes {
    ($($method:ident $path:literal => $handler:path, $scope:expr, $act:ident;)+) => {
        /// Every admin route, as registered. A test calls each as an administrator the policies
        /// refuse and checks it answers 403 and audits the refusal (no route acts without a
        /// decision); another checks the OpenAPI document lists exactly these.
        pub const ROUTES: &[Route] = &[
            $(Route { method: admin_routes!(@name $method), path: $path, scope: $scope, act: Act::$act },)+
        ];

        fn register(scope: actix_web::Scope) -> actix_web::Scope {
            scope$(.route($path, web::$method().to($handler)))+
        }
    };
    (@name get) => { "GET" };
    (@name put) => { "PUT" };
    (@name post) => { "POST" };
    (@name delete) => { "DELETE" };
    (@name patch) => { "PATCH" };
}

admin_routes! {
    get "/users" => users::list, SCOPE_USERS, UserList;
    post "/users" => users::create, SCOPE_USERS, UserCreate;
    post "/users/import" => users::import, SCOPE_USERS, UserCreate;
    get "/users/{id}" => users::read, SCOPE_USERS, UserRead;
    patch "/users/{id}" => users::update, SCOPE_USERS, UserUpdate;
    post "/users/{id}/disable" => users::disable, SCOPE_USERS, UserDisable;
    post "/users/{id}/enable" => users::enable, SCOPE_USERS, UserEnable;
    put "/users/{id}/roles/{role}" => users::grant_role, SCOPE_USERS, RoleAssign;
    delete "/users/{id}/roles/{role}" => users::revoke_role, SCOPE_USERS, RoleAssign;
    post "/users/{id}/factors/reset" => users::reset_factors, SCOPE_USERS, FactorsReset;
    get "/users/{id}/sessions" => users::sessions, SCOPE_USERS, UserRead;
    delete "/users/{id}/sessions" => users::revoke_sessions, SCOPE_USERS, SessionsRevoke;
    get "/org-units" => org_units::list, SCOPE_USERS, UserList;
    post "/org-units" => org_units::create, SCOPE_USERS, OrgManage;
    get "/roles" => org_units::list_roles, SCOPE_USERS, UserList;
    get "/clients" => clients::list, SCOPE_CLIENTS, ClientRead;
    post "/clients/suspensions" => clients::suspend_many, SCOPE_CLIENTS, ClientSuspendBulk;
    post "/clients/resumptions" => clients::resume_many, SCOPE_CLIENTS, ClientSuspendBulk;
    get "/clients/{id}" => clients::read, SCOPE_CLIENTS, ClientRead;
    post "/clients/{id}/suspend" => clients::suspend, SCOPE_CLIENTS, ClientManage;
    post "/clients/{id}/resume" => clients::resume, SCOPE_CLIENTS, ClientManage;
    post "/clients/{id}/secret" => clients::rotate_secret, SCOPE_CLIENTS, ClientManage;
    get "/audit-events" => audit::list, SCOPE_AUDIT, AuditRead;
    get "/policy" => policy::current, SCOPE_POLICY, PolicyRead;
    post "/policy/validate" => policy::validate, SCOPE_POLICY, PolicyRead;
    post "/policy/reload" => policy::reload, SCOPE_POLICY, PolicyManage;
    post "/password-reset-campaigns" => campaigns::launch, SCOPE_CAMPAIGNS, CampaignLaunch;
    get "/password-reset-campaigns/{id}" => campaigns::read, SCOPE_CAMPAIGNS, UserList;
    post "/password-reset-campaigns/{id}/cancel" => campaigns::cancel, SCOPE_CAMPAIGNS, CampaignLaunch;
}

impl Route {
    pub fn method(&self) -> Method {
        Method::from_bytes(self.method.as_bytes()).unwrap_or(Method::GET)
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(register(web::scope(BASE)).configure(openapi::configure).default_service(web::to(
        || async {
            crate::http::problem::Problem::new(
                actix_web::http::StatusCode::NOT_FOUND,
                "There is no such admin API resource.",
            )
            .response()
        },
    )));
}

/// Asks the policies whether `caller` may do `A` to `target`; a refusal is audited and
/// answered (403, or 401 with a step-up challenge).
async fn allow<A: AdminAction>(
    state: &AppState,
    caller: &Caller,
    target: Target<'_>,
) -> Result<Capability<A>, error::ApiError> {
    match state.core.policy.authorize::<A>(&caller.person, &caller.login, target) {
        Ok(cap) => Ok(cap),
        Err(denied) => {
            audit_denial(state, caller, &denied).await;
            Err(denied.into())
        }
    }
}

/// The unit at `path` and its chain up to the root; empty when there is no such unit.
async fn unit_chain(
    state: &AppState,
    path: &crate::domain::OrgPath,
) -> Result<Vec<crate::domain::OrgUnit>, error::ApiError> {
    let p = path.clone();
    state
        .core
        .db
        .run(move |c| match crate::store::org_units::find_by_path(c, &p)? {
            Some(u) => crate::store::org_units::chain(c, &u.id),
            None => Ok(Vec::new()),
        })
        .await
        .map_err(|e| error::ApiError::unexpected(&e))
}

/// Records a refused decision: who, what, on what, and the policies that refused.
async fn audit_denial(state: &AppState, caller: &Caller, denied: &Denied) {
    let target = match &denied.subject {
        Subject::User(u) => format!("user:{u}"),
        Subject::Role { role, user } => format!("user:{user} role:{role}"),
        Subject::Org(Some(o)) => format!("org:{o}"),
        Subject::Org(None) => "org:-".to_owned(),
        Subject::Client(c) => format!("client:{c}"),
        Subject::Policies => "policy".to_owned(),
    };
    let event =
        AuditEvent::new(caller.actor(), "admin.denied", Outcome::Denied).target(target).details(json!({
            "action": denied.act.name(),
            "decision": denied.verdict.reason(),
            "policies": denied.verdict.policies,
            "policy_version": denied.verdict.version,
            "step_up": denied.verdict.step_up,
        }));
    if let Err(e) = state.core.audit.append(event).await {
        tracing::error!(error = ?e, "could not audit a refused admin action");
    }
}
