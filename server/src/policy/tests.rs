use super::*;

fn shipped() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies")
}

/// A copy of the shipped policies in a temporary folder, with `file` replaced by `text`.
fn with_file(file: &str, text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&shipped(), dir.path());
    std::fs::write(dir.path().join(file), text).unwrap();
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn the_shipped_policies_validate_and_pass_their_cases() {
    let p = load_valid(&shipped()).unwrap_or_else(|e| panic!("{e:#?}"));
    assert!(p.len() >= 20, "{} policies", p.len());
    let report = run_tests(&p).unwrap_or_else(|e| panic!("{e:#?}"));
    assert!(report.failures.is_empty(), "{:#?}", report.failures);
    assert!(report.passed >= 40, "{} cases", report.passed);
}

#[test]
fn a_syntax_error_names_the_file_and_line() {
    let text = "// a comment\n@id(\"broken\")\npermit (principal, action, resource)\nwhen { principal.active && };\n";
    let errors = load(with_file("broken.cedar", text).path()).unwrap_err();
    let e = errors.iter().find(|e| e.file == "broken.cedar").unwrap_or_else(|| panic!("{errors:#?}"));
    assert_eq!(e.line, 4, "{e}");
    assert!(!e.reason.is_empty());
}

#[test]
fn a_policy_the_schema_does_not_allow_is_named_with_its_file_and_line() {
    let text = "@id(\"ok\")\npermit (principal, action == Pramaan::Action::\"scope.user\", resource);\n\n\
                @id(\"typo\")\npermit (principal, action == Pramaan::Action::\"user.update\", resource)\n\
                when { principal.rank == \"high\" };\n";
    let p = load(with_file("typo.cedar", text).path()).unwrap();
    let errors = p.validate();
    let e = errors.iter().find(|e| e.file == "typo.cedar").unwrap_or_else(|| panic!("{errors:#?}"));
    assert_eq!(e.line, 6, "{e}");
    assert!(e.reason.contains("typo") && e.reason.contains("rank"), "{e}");
}

#[test]
fn every_policy_needs_a_unique_id() {
    let text = "@id(\"oidc-scopes\")\npermit (principal, action, resource);\n\npermit (principal, action, resource);\n";
    let errors = load(with_file("dupes.cedar", text).path()).unwrap_err();
    let lines: Vec<(usize, &str)> =
        errors.iter().filter(|e| e.file == "dupes.cedar").map(|e| (e.line, e.reason.as_str())).collect();
    assert!(lines.iter().any(|(l, r)| *l == 2 && r.contains("common.cedar")), "{lines:?}");
    assert!(lines.iter().any(|(l, r)| *l == 4 && r.contains("@id")), "{lines:?}");
}

#[test]
fn a_case_that_decides_otherwise_is_reported_with_its_reason() {
    let cases = r#"{ "entities": "entities/staff.json", "cases": [
        { "name": "wrongly expected", "principal": "Pramaan::User::\"vacc-blr\"", "action": "scope.user",
          "resource": "Pramaan::Scope::\"registry.write\"",
          "context": { "client": { "__entity": { "type": "Pramaan::Client", "id": "field-app" } } },
          "expect": "allow", "by": ["vaccinator-scopes"], "reason": "a deliberately wrong expectation" } ] }"#;
    let dir = with_file("tests/zz-wrong.json", cases);
    let p = load_valid(dir.path()).unwrap();
    let report = run_tests(&p).unwrap();
    assert_eq!(report.failures.len(), 1, "{:#?}", report.failures);
    assert!(report.failures[0].contains("wrongly expected") && report.failures[0].contains("deliberately"));
}

#[test]
fn a_right_decision_by_other_policies_than_named_is_reported_too() {
    let case = |by: &str| {
        format!(
            r#"{{ "entities": "entities/staff.json", "cases": [
            {{ "name": "decided by", "principal": "Pramaan::User::\"vacc-blr\"", "action": "scope.user",
              "resource": "Pramaan::Scope::\"registry.read\"",
              "context": {{ "client": {{ "__entity": {{ "type": "Pramaan::Client", "id": "field-app" }} }} }},
              "expect": "allow", "by": {by}, "reason": "vaccinators read the registry" }} ] }}"#
        )
    };
    let run = |by: &str| {
        let dir = with_file("tests/zz-by.json", &case(by));
        run_tests(&load_valid(dir.path()).unwrap()).unwrap()
    };
    assert!(run(r#"["vaccinator-scopes"]"#).failures.is_empty());
    for wrong in [r#"[]"#, r#"["oidc-scopes"]"#, r#"["vaccinator-scopes", "oidc-scopes"]"#] {
        let report = run(wrong);
        assert_eq!(report.failures.len(), 1, "{wrong}");
        assert!(report.failures[0].contains("got Allow by vaccinator-scopes"), "{}", report.failures[0]);
    }
}

#[test]
fn the_built_in_set_is_every_file_of_the_policies_folder() {
    let on_disk = read_dir(&shipped()).unwrap();
    let built_in = builtin_sources();
    assert_eq!(on_disk.keys().collect::<Vec<_>>(), built_in.keys().collect::<Vec<_>>());
    assert_eq!(on_disk, built_in, "rebuild: the compiled-in policies differ from policies/");
}

mod decisions {
    use super::super::*;
    use crate::domain::{ClientCategory, Factor, OrgPath, OrgUnit, OrgUnitId, RoleName, Scope, UserId};
    use crate::mfa::Requirement;

    fn engine() -> PolicyEngine {
        PolicyEngine::new(from_sources_valid(builtin_sources()).unwrap(), Origin::BuiltIn)
    }

    /// The chain from `path`'s unit up to the root; each unit's id is its path.
    fn chain(path: &str) -> Vec<OrgUnit> {
        let mut out = Vec::new();
        let mut p = Some(OrgPath::parse(path).unwrap());
        while let Some(unit) = p {
            p = unit.parent();
            out.push(OrgUnit {
                id: OrgUnitId::from_string(unit.as_str().to_owned()),
                parent_id: p.as_ref().map(|q| OrgUnitId::from_string(q.as_str().to_owned())),
                kind: ["national", "state", "district", "facility"][unit.depth() - 1].to_owned(),
                name: unit.as_str().to_owned(),
                path: unit,
                created_at: chrono::Utc::now(),
            });
        }
        out
    }

    fn person(name: &str, roles: &[&str], org: &str) -> Person {
        Person {
            id: UserId::from_string(format!("id-{name}")),
            username: name.to_owned(),
            active: true,
            roles: roles.iter().map(|r| RoleName::parse(r).unwrap()).collect(),
            org: chain(org),
        }
    }

    fn scopes(s: &str) -> Vec<Scope> {
        Scope::parse_list(s).unwrap()
    }

    fn fresh() -> LoginFacts {
        LoginFacts { auth_age_secs: 60, amr: vec!["pwd".into(), "otp".into(), "mfa".into()] }
    }

    const APP: ClientFacts<'static> =
        ClientFacts { id: "field-app", category: ClientCategory::Government, first_party: true };

    #[test]
    fn the_server_asks_every_action_of_the_schema_and_no_other() {
        let p = from_sources_valid(builtin_sources()).unwrap();
        let mut in_schema: Vec<String> = p.schema.actions().map(|a| a.id().unescaped().to_owned()).collect();
        let mut asked: Vec<String> = Act::ALL.iter().map(|a| a.name().to_owned()).collect();
        in_schema.sort();
        asked.sort();
        assert_eq!(in_schema, asked);
    }

    #[test]
    fn factors_follow_the_roles() {
        let e = engine();
        let either = Requirement::OneOf(vec![Factor::Totp, Factor::Sms]);
        let app = Requirement::OneOf(vec![Factor::Totp]);
        assert_eq!(e.factors(&person("v", &["vaccinator"], "in/ka/blr/phc")), either);
        assert_eq!(e.factors(&person("n", &["national_admin"], "in")), app);
        // An administrator who also vaccinates may use only what both allow.
        assert_eq!(e.factors(&person("d", &["vaccinator", "district_admin"], "in/ka/blr")), app);
        assert_eq!(e.factors(&person("c", &[], "in/ka")), Requirement::None);
    }

    #[test]
    fn a_person_receives_only_the_scopes_their_roles_allow() {
        let e = engine();
        let v = person("v", &["vaccinator"], "in/ka/blr/phc");
        let asked = scopes("openid registry.read vaccination.record registry.write admin.users");
        assert_eq!(e.user_scopes(&v, APP, &asked), scopes("openid registry.read vaccination.record"));
        let verdict = e.user_scope(&v, APP, &Scope::parse("registry.write").unwrap());
        assert!(!verdict.allowed);
        assert_eq!(verdict.reason(), "no policy permits it");
        // Administrative scopes only through internal clients.
        let n = person("n", &["national_admin"], "in");
        let partner = ClientFacts { id: "p", category: ClientCategory::Private, first_party: false };
        let v = e.user_scope(&n, partner, &Scope::parse("admin.users").unwrap());
        assert_eq!(v.reason(), "forbidden by admin-scopes-only-internal");
        let console = ClientFacts { id: "console", category: ClientCategory::Internal, first_party: true };
        assert!(e.user_scope(&n, console, &Scope::parse("admin.users").unwrap()).allowed);
    }

    #[test]
    fn a_disabled_person_receives_nothing() {
        let e = engine();
        let mut v = person("v", &["vaccinator"], "in/ka/blr/phc");
        v.active = false;
        assert!(e.user_scopes(&v, APP, &scopes("openid registry.read")).is_empty());
    }

    #[test]
    fn clients_receive_what_their_category_allows_and_the_answer_is_remembered_per_set() {
        let e = engine();
        let private = ClientFacts { id: "p", category: ClientCategory::Private, first_party: false };
        let read = Scope::parse("registry.read").unwrap();
        let write = Scope::parse("registry.write").unwrap();
        assert!(e.client_scope(private, &read));
        assert!(!e.client_scope(private, &write));
        assert!(!e.client_scope(private, &write), "the remembered answer is the same");
        let gov = ClientFacts { id: "p", category: ClientCategory::Government, first_party: false };
        assert!(e.client_scope(gov, &write), "a changed category is a different question");
    }

    #[test]
    fn a_district_admin_acts_inside_their_district_only() {
        let e = engine();
        let admin = person("d", &["district_admin"], "in/ka/blr");
        let inside = person("v1", &["vaccinator"], "in/ka/blr/phc");
        let outside = person("v2", &["vaccinator"], "in/ka/mys/phc");
        let ok = e.admin(Act::UserDisable, &admin, &fresh(), Target::Person(&inside));
        assert!(ok.allowed, "{ok:?}");
        assert!(ok.policies.contains(&"district-admin-accounts".to_owned()), "{ok:?}");
        let no = e.admin(Act::UserDisable, &admin, &fresh(), Target::Person(&outside));
        assert!(!no.allowed);
        assert_eq!(no.reason(), "no policy permits it");
    }

    #[test]
    fn sensitive_actions_need_a_recent_login_with_a_one_time_password() {
        let e = engine();
        let admin = person("n", &["national_admin"], "in");
        let v = person("v", &["vaccinator"], "in/ka/blr/phc");
        let old = LoginFacts { auth_age_secs: 1800, ..fresh() };
        let verdict = e.admin(Act::UserDisable, &admin, &old, Target::Person(&v));
        assert_eq!(verdict.reason(), "forbidden by step-up");
        let recovery = LoginFacts { auth_age_secs: 60, amr: vec!["pwd".into(), "mfa".into()] };
        assert!(!e.admin(Act::UserDisable, &admin, &recovery, Target::Person(&v)).allowed);
        // Reading is not sensitive.
        assert!(e.admin(Act::UserRead, &admin, &old, Target::Person(&v)).allowed);
    }

    #[test]
    fn nobody_grants_a_role_they_do_not_hold_and_holding_includes_the_junior_roles() {
        let e = engine();
        let admin = person("d", &["district_admin"], "in/ka/blr");
        let v = person("v", &[], "in/ka/blr/phc");
        let grant = |role: &str| {
            let role = RoleName::parse(role).unwrap();
            e.admin(Act::RoleAssign, &admin, &fresh(), Target::Grant { role: &role, to: &v })
        };
        assert_eq!(grant("state_admin").reason(), "forbidden by grant-only-held-roles");
        assert_eq!(grant("auditor").reason(), "forbidden by grant-only-held-roles");
        // roles.json: a district admin holds facility_admin, which holds vaccinator and verifier.
        for held in ["district_admin", "facility_admin", "vaccinator", "verifier", "helpdesk"] {
            assert!(grant(held).allowed, "{held}: {:?}", grant(held));
        }
        // A national admin holds every administrative role.
        let n = person("n", &["national_admin"], "in");
        let state = RoleName::parse("state_admin").unwrap();
        assert!(e.admin(Act::RoleAssign, &n, &fresh(), Target::Grant { role: &state, to: &v }).allowed);
    }

    #[test]
    fn an_administrator_is_administered_only_from_a_rank_above() {
        let e = engine();
        let helpdesk = person("h", &["helpdesk"], "in/ka/blr");
        let district = person("d", &["district_admin"], "in/ka/blr");
        let peer = person("d2", &["district_admin"], "in/ka/blr");
        let state = person("s", &["state_admin"], "in/ka");
        let reset =
            |who: &Person, whom: &Person| e.admin(Act::FactorsReset, who, &fresh(), Target::Person(whom));
        assert_eq!(reset(&helpdesk, &district).reason(), "forbidden by administer-only-junior-accounts");
        assert!(!e.admin(Act::UserDisable, &district, &fresh(), Target::Person(&peer)).allowed);
        assert!(reset(&state, &district).allowed);
        let vacc = person("v", &["vaccinator"], "in/ka/blr/phc");
        assert!(reset(&helpdesk, &vacc).allowed, "the helpdesk still resets field staff");
        // Taking a role away from a peer is changing a peer's roles.
        let role = RoleName::parse("district_admin").unwrap();
        let demote = e.admin(Act::RoleAssign, &district, &fresh(), Target::Grant { role: &role, to: &peer });
        assert_eq!(demote.reason(), "forbidden by grant-only-to-junior-accounts");
        assert!(e.admin(Act::RoleAssign, &state, &fresh(), Target::Grant { role: &role, to: &peer }).allowed);
    }

    #[test]
    fn a_step_up_is_asked_only_when_it_would_change_the_answer() {
        let e = engine();
        let admin = person("d", &["district_admin"], "in/ka/blr");
        let old = LoginFacts { auth_age_secs: 1800, ..fresh() };
        let inside = person("v1", &["vaccinator"], "in/ka/blr/phc");
        let outside = person("v2", &["vaccinator"], "in/ka/mys/phc");
        let here = e.admin(Act::UserDisable, &admin, &old, Target::Person(&inside));
        assert!(!here.allowed && here.step_up, "{here:?}");
        let there = e.admin(Act::UserDisable, &admin, &old, Target::Person(&outside));
        assert!(!there.allowed && !there.step_up, "no login would allow it: {there:?}");
    }

    #[test]
    fn a_reloaded_set_decides_from_then_on() {
        let e = engine();
        let before = e.version();
        let v = person("v", &["vaccinator"], "in/ka/blr/phc");
        let write = Scope::parse("registry.write").unwrap();
        assert!(!e.user_scope(&v, APP, &write).allowed);
        let mut files = builtin_sources();
        files.insert(
            "extra.cedar".into(),
            "@id(\"vaccinators-write\")\npermit (principal in Pramaan::Role::\"vaccinator\", \
             action == Pramaan::Action::\"scope.user\", resource == Pramaan::Scope::\"registry.write\");\n"
                .into(),
        );
        e.replace(from_sources_valid(files).unwrap(), Origin::BuiltIn);
        assert_ne!(e.version(), before);
        let verdict = e.user_scope(&v, APP, &write);
        assert_eq!(verdict.reason(), "permitted by vaccinators-write");
    }
}
