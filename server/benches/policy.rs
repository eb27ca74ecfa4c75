//! One Cedar decision against the shipped policies (issue 5's target: under 50 µs): a token
//! scope for a person and an administrative action, for a person with five roles in a facility
//! of a district of a state. Each is measured with the entity set already built, and with
//! building it from JSON as a request would from the database.
//! `cargo bench -p pramaan-server --bench policy`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::str::FromStr;

use cedar_policy::{Authorizer, Context, Decision, Entities, EntityUid, Request};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};

fn uid(t: &str, id: &str) -> Value {
    json!({ "type": format!("Pramaan::{t}"), "id": id })
}

/// The org path, the five roles, the person, the account acted on, a client and a scope.
fn entities_json() -> Value {
    let mut e = vec![
        json!({ "uid": uid("OrgUnit", "national"), "attrs": { "kind": "national", "path": "national" }, "parents": [] }),
        json!({ "uid": uid("OrgUnit", "ka"), "attrs": { "kind": "state", "path": "national/ka" }, "parents": [uid("OrgUnit", "national")] }),
        json!({ "uid": uid("OrgUnit", "blr"), "attrs": { "kind": "district", "path": "national/ka/blr" }, "parents": [uid("OrgUnit", "ka")] }),
        json!({ "uid": uid("OrgUnit", "phc-1"), "attrs": { "kind": "facility", "path": "national/ka/blr/phc-1" }, "parents": [uid("OrgUnit", "blr")] }),
        json!({ "uid": uid("Client", "field-app"), "attrs": { "category": "government", "first_party": true }, "parents": [] }),
        json!({ "uid": uid("Scope", "registry.read"), "attrs": {}, "parents": [] }),
    ];
    let roles = ["vaccinator", "verifier", "facility_admin", "district_admin", "helpdesk"];
    for r in roles {
        e.push(json!({ "uid": uid("Role", r), "attrs": {}, "parents": [] }));
    }
    let mut parents: Vec<Value> = roles.iter().map(|r| uid("Role", r)).collect();
    parents.push(uid("OrgUnit", "blr"));
    e.push(json!({ "uid": uid("User", "asha"),
        "attrs": { "username": "asha", "active": true, "org": { "__entity": uid("OrgUnit", "blr") } },
        "parents": parents }));
    e.push(json!({ "uid": uid("User", "ravi"),
        "attrs": { "username": "ravi", "active": true, "org": { "__entity": uid("OrgUnit", "phc-1") } },
        "parents": [uid("Role", "vaccinator"), uid("OrgUnit", "phc-1")] }));
    Value::Array(e)
}

fn policy(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let p = pramaan_server::policy::load_valid(&dir).expect("the shipped policies");
    let authorizer = Authorizer::new();
    let asha = EntityUid::from_str(r#"Pramaan::User::"asha""#).unwrap();
    let decisions = [
        (
            "scope.user",
            r#"Pramaan::Scope::"registry.read""#,
            json!({ "client": { "__entity": uid("Client", "field-app") } }),
        ),
        (
            "user.disable",
            r#"Pramaan::User::"ravi""#,
            json!({ "login": { "auth_age_secs": 60, "amr": ["pwd", "otp", "mfa"] } }),
        ),
    ];
    let built = Entities::from_json_value(entities_json(), Some(&p.schema)).unwrap();
    for (action, resource, context) in decisions {
        let action_uid = EntityUid::from_str(&format!("Pramaan::Action::\"{action}\"")).unwrap();
        let resource = EntityUid::from_str(resource).unwrap();
        let decide = |entities: &Entities| {
            let ctx = Context::from_json_value(context.clone(), Some((&p.schema, &action_uid))).unwrap();
            let req = Request::new(asha.clone(), action_uid.clone(), resource.clone(), ctx, Some(&p.schema))
                .unwrap();
            authorizer.is_authorized(&req, &p.set, entities).decision()
        };
        assert_eq!(decide(&built), Decision::Allow, "{action}");
        c.bench_function(&format!("decision/{action}"), |b| b.iter(|| decide(&built)));
        // The request and context built without checking them against the schema again (the
        // server builds them from typed values the schema already fits).
        let unchecked = |entities: &Entities| {
            let ctx = Context::from_json_value(context.clone(), None).unwrap();
            let req = Request::new(asha.clone(), action_uid.clone(), resource.clone(), ctx, None).unwrap();
            authorizer.is_authorized(&req, &p.set, entities).decision()
        };
        assert_eq!(unchecked(&built), Decision::Allow, "{action}");
        c.bench_function(&format!("decision/{action}/unchecked"), |b| b.iter(|| unchecked(&built)));
        let req_only = {
            let ctx = Context::from_json_value(context.clone(), None).unwrap();
            Request::new(asha.clone(), action_uid.clone(), resource.clone(), ctx, None).unwrap()
        };
        c.bench_function(&format!("decision/{action}/authorize-only"), |b| {
            b.iter(|| authorizer.is_authorized(&req_only, &p.set, &built).decision())
        });
        c.bench_function(&format!("decision/{action}+entities"), |b| {
            b.iter(|| decide(&Entities::from_json_value(entities_json(), Some(&p.schema)).unwrap()))
        });
    }
}

/// The server's own decision path (`PolicyEngine`): entities built from typed values with
/// `Entity::new`, the set sliced per action, the role hierarchy applied.
fn engine(c: &mut Criterion) {
    use chrono::Utc;
    use pramaan_server::domain::{ClientCategory, OrgPath, OrgUnit, OrgUnitId, RoleName, Scope, UserId};
    use pramaan_server::policy::{
        Act, ClientFacts, LoginFacts, Origin, Person, PolicyEngine, Target, builtin_sources,
        from_sources_valid,
    };
    let engine = PolicyEngine::new(from_sources_valid(builtin_sources()).unwrap(), Origin::BuiltIn);
    let chain = |path: &str| -> Vec<OrgUnit> {
        let mut out = Vec::new();
        let mut p = Some(OrgPath::parse(path).unwrap());
        while let Some(unit) = p {
            p = unit.parent();
            out.push(OrgUnit {
                id: OrgUnitId::from_string(unit.as_str().to_owned()),
                parent_id: p.as_ref().map(|q| OrgUnitId::from_string(q.as_str().to_owned())),
                kind: "unit".into(),
                name: unit.as_str().to_owned(),
                path: unit,
                created_at: Utc::now(),
            });
        }
        out
    };
    let roles = |names: &[&str]| names.iter().map(|r| RoleName::parse(r).unwrap()).collect::<Vec<_>>();
    // A person with five roles in a facility of a district of a state.
    let asha = Person {
        id: UserId::from_string("asha".into()),
        username: "asha".into(),
        active: true,
        roles: roles(&["vaccinator", "verifier", "facility_admin", "district_admin", "helpdesk"]),
        org: chain("in/ka/blr"),
    };
    let ravi = Person {
        id: UserId::from_string("ravi".into()),
        username: "ravi".into(),
        active: true,
        roles: roles(&["vaccinator"]),
        org: chain("in/ka/blr/phc-1"),
    };
    let app = ClientFacts { id: "field-app", category: ClientCategory::Government, first_party: true };
    let read = Scope::parse("registry.read").unwrap();
    let login = LoginFacts { auth_age_secs: 60, amr: vec!["pwd".into(), "otp".into(), "mfa".into()] };
    assert!(engine.user_scope(&asha, app, &read).allowed);
    assert!(engine.admin(Act::UserDisable, &asha, &login, Target::Person(&ravi)).allowed);
    assert!(engine.client_scope(app, &read));
    c.bench_function("engine/scope.user (token issuance)", |b| {
        b.iter(|| engine.user_scope(&asha, app, &read))
    });
    c.bench_function("engine/user.disable (admin action)", |b| {
        b.iter(|| engine.admin(Act::UserDisable, &asha, &login, Target::Person(&ravi)))
    });
    c.bench_function("engine/factors (factor.require + 2 factor.use)", |b| b.iter(|| engine.factors(&asha)));
    c.bench_function("engine/scope.client (remembered)", |b| b.iter(|| engine.client_scope(app, &read)));
}

criterion_group!(benches, policy, engine);
criterion_main!(benches);
