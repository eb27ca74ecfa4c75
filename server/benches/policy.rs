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

criterion_group!(benches, policy);
criterion_main!(benches);
