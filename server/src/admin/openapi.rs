//! The admin API's OpenAPI 3.1 document, generated from the handlers' annotations and served at
//! `/admin/api/v1/openapi.json`. Every operation also lists the problem+json answers every
//! route can give (400, 401, 403, 404, 409, 413, 415, 422, 503), so a client generated from it
//! (or schemathesis, which `.ci/run` points at it) knows every status it may see.

use actix_web::{HttpResponse, web};
use utoipa::openapi::response::{ResponseBuilder, ResponsesBuilder};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ServerBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

use super::{audit, campaigns, clients, org_units, policy, users};

/// An RFC 9457 problem: what every error of this API answers, as `application/problem+json`.
#[derive(Debug, serde::Serialize, ToSchema)]
#[schema(as = Problem)]
pub struct ProblemDoc {
    /// A URI naming the kind of problem (`about:blank` when the status says it all).
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// What happened and what to do, for a person to read.
    pub detail: String,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Pramaan admin API", description = "Accounts, roles and role policies, behind the role policies' decisions. Errors are RFC 9457 problem details."),
    paths(
        users::list,
        users::create,
        users::import,
        users::read,
        users::update,
        users::disable,
        users::enable,
        users::grant_role,
        users::revoke_role,
        users::reset_factors,
        users::sessions,
        users::revoke_sessions,
        org_units::list,
        org_units::create,
        org_units::list_roles,
        clients::list,
        clients::read,
        clients::suspend,
        clients::resume,
        clients::rotate_secret,
        clients::suspend_many,
        clients::resume_many,
        audit::list,
        policy::current,
        policy::validate,
        policy::reload,
        campaigns::launch,
        campaigns::read,
        campaigns::cancel,
    ),
    components(schemas(ProblemDoc)),
    modifiers(&Conventions),
    tags(
        (name = "users", description = "Accounts"),
        (name = "org-units", description = "The organisation tree and the roles"),
        (name = "clients", description = "OAuth clients"),
        (name = "audit", description = "The audit trail"),
        (name = "policy", description = "The role policies"),
        (name = "campaigns", description = "Forced password-reset campaigns")
    )
)]
pub struct ApiDoc;

/// The bearer scheme, the base path, and the error answers of every operation.
struct Conventions;

const ERRORS: &[(&str, &str)] = &[
    ("400", "The request is malformed (query, path or body)."),
    ("401", "No, an invalid, or a too old token (see WWW-Authenticate; a step-up is RFC 9470)."),
    ("403", "The token lacks the scope, or the role policies refuse the action."),
    ("404", "No such resource."),
    ("409", "The change conflicts with the current state (such as the last national admin)."),
    ("413", "The body is too large."),
    ("415", "The body is not of the media type the operation takes."),
    ("422", "A policy set that does not check."),
    ("503", "Try again shortly."),
];

impl Modify for Conventions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi.servers = Some(vec![ServerBuilder::new().url(super::BASE).build()]);
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build(),
            ),
        );
        let problem = |description: &str| -> RefOr<Response> {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/problem+json",
                        ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build(),
                    )
                    .build(),
            )
        };
        for item in openapi.paths.paths.values_mut() {
            for op in [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch]
                .into_iter()
                .flatten()
            {
                let mut extra = ResponsesBuilder::new();
                for (code, description) in ERRORS {
                    if !op.responses.responses.contains_key(*code) {
                        extra = extra.response(*code, problem(description));
                    }
                }
                op.responses.responses.extend(extra.build().responses);
            }
        }
    }
}

/// The document, once.
pub fn document() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_else(|_| "{}".to_owned())
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    let doc = web::Data::new(document());
    cfg.app_data(doc).route(
        "/openapi.json",
        web::get().to(|doc: web::Data<String>| async move {
            HttpResponse::Ok().content_type("application/json").body(doc.get_ref().clone())
        }),
    );
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_and_lists_exactly_the_registered_routes() {
        let doc: serde_json::Value = serde_json::from_str(&document()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{}", doc["openapi"]);
        assert_eq!(doc["servers"][0]["url"], super::super::BASE);
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in ["get", "put", "post", "delete", "patch"] {
                if let Some(op) = item.get(method) {
                    documented.insert((method.to_uppercase(), path.clone()));
                    let responses = op["responses"].as_object().unwrap();
                    for code in ["400", "401", "403", "404", "503"] {
                        assert!(responses.contains_key(code), "{method} {path} documents {code}");
                    }
                    assert!(op["security"].is_array(), "{method} {path} names its scope");
                }
            }
        }
        let registered: BTreeSet<(String, String)> =
            super::super::ROUTES.iter().map(|r| (r.method.to_owned(), r.path.to_owned())).collect();
        assert_eq!(documented, registered);
        // Each operation's scope is the route's.
        for r in super::super::ROUTES {
            let op = &doc["paths"][r.path][r.method.to_lowercase()];
            assert_eq!(op["security"][0]["bearer"][0], r.scope, "{} {}", r.method, r.path);
        }
    }
}
