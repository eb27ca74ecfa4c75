//! The running policy set and the questions the server asks it. Each decision is one Cedar
//! request built from typed values (a [`Person`], a client, a login), against the slice of the
//! set that can apply to its action. The set is swapped atomically on reload; a decision in
//! flight finishes on the set it started with.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use cedar_policy::{
    ActionConstraint, Authorizer, Context, Decision, Entities, Entity, EntityId, EntityTypeName, EntityUid,
    PolicySet, Request, RestrictedExpression,
};

use super::Policies;
use crate::domain::{ClientCategory, Factor, OrgUnit, RoleName, Scope, UserId};
use crate::mfa::Requirement;

/// Every action of the schema: one per kind of question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Act {
    ScopeUser,
    ScopeClient,
    FactorRequire,
    FactorUse,
    UserRead,
    UserList,
    UserCreate,
    UserUpdate,
    UserDisable,
    UserEnable,
    FactorsReset,
    SessionsRevoke,
    RoleAssign,
    AuditRead,
    CampaignLaunch,
    OrgManage,
    ClientRead,
    ClientManage,
    ClientSuspendBulk,
    PolicyRead,
    PolicyManage,
}

impl Act {
    pub const ALL: &'static [Act] = &[
        Act::ScopeUser,
        Act::ScopeClient,
        Act::FactorRequire,
        Act::FactorUse,
        Act::UserRead,
        Act::UserList,
        Act::UserCreate,
        Act::UserUpdate,
        Act::UserDisable,
        Act::UserEnable,
        Act::FactorsReset,
        Act::SessionsRevoke,
        Act::RoleAssign,
        Act::AuditRead,
        Act::CampaignLaunch,
        Act::OrgManage,
        Act::ClientRead,
        Act::ClientManage,
        Act::ClientSuspendBulk,
        Act::PolicyRead,
        Act::PolicyManage,
    ];

    /// The action's name in the schema.
    pub fn name(self) -> &'static str {
        match self {
            Act::ScopeUser => "scope.user",
            Act::ScopeClient => "scope.client",
            Act::FactorRequire => "factor.require",
            Act::FactorUse => "factor.use",
            Act::UserRead => "user.read",
            Act::UserList => "user.list",
            Act::UserCreate => "user.create",
            Act::UserUpdate => "user.update",
            Act::UserDisable => "user.disable",
            Act::UserEnable => "user.enable",
            Act::FactorsReset => "factors.reset",
            Act::SessionsRevoke => "sessions.revoke",
            Act::RoleAssign => "role.assign",
            Act::AuditRead => "audit.read",
            Act::CampaignLaunch => "campaign.launch",
            Act::OrgManage => "org.manage",
            Act::ClientRead => "client.read",
            Act::ClientManage => "client.manage",
            Act::ClientSuspendBulk => "client.suspend_bulk",
            Act::PolicyRead => "policy.read",
            Act::PolicyManage => "policy.manage",
        }
    }

    fn uid(self) -> EntityUid {
        uid("Action", self.name())
    }
}

impl std::fmt::Display for Act {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A person as the policies see them: their roles and where they sit in the organisation.
#[derive(Debug, Clone)]
pub struct Person {
    pub id: UserId,
    pub username: String,
    pub active: bool,
    pub roles: Vec<RoleName>,
    /// Their unit first, then its parent, up to the root; empty when they have none.
    pub org: Vec<OrgUnit>,
}

/// A client as the policies see it.
#[derive(Debug, Clone, Copy)]
pub struct ClientFacts<'a> {
    pub id: &'a str,
    pub category: ClientCategory,
    pub first_party: bool,
}

impl<'a> ClientFacts<'a> {
    pub fn of(c: &'a crate::domain::Client) -> Self {
        Self { id: c.id.as_str(), category: c.registration.category, first_party: c.registration.first_party }
    }
}

/// The login an administrative request is made with (from its access token).
#[derive(Debug, Clone)]
pub struct LoginFacts {
    /// Seconds since the person last proved who they are.
    pub auth_age_secs: i64,
    /// RFC 8176 method references.
    pub amr: Vec<String>,
}

/// What an administrative action is done to.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// An account (create, update, disable, enable, reset factors, end sessions).
    Person(&'a Person),
    /// Granting `role` to the account.
    Grant { role: &'a RoleName, to: &'a Person },
    /// An organisation unit's subtree, its chain from the unit up to the root (audit, campaigns).
    Org(&'a [OrgUnit]),
    /// A client.
    Client(ClientFacts<'a>),
    /// The role policies themselves.
    Policies,
}

/// A decision and the policies that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// The policies that decided: the permitting ones when allowed, the forbidding ones when
    /// denied (empty: no policy permits it).
    pub policies: Vec<String>,
    /// The set's version.
    pub version: String,
    /// Denied by a policy marked `@problem("step-up")`, and a recent login with a one-time
    /// password would be allowed: stepping up changes the answer.
    pub step_up: bool,
    /// The request could not be evaluated in full (it was denied for it).
    pub errored: bool,
}

impl Verdict {
    /// One line for the audit trail and the caller: which policies decided, and why.
    pub fn reason(&self) -> String {
        match (self.allowed, self.policies.is_empty()) {
            (true, _) => format!("permitted by {}", self.policies.join(", ")),
            (false, true) => "no policy permits it".to_owned(),
            (false, false) => format!("forbidden by {}", self.policies.join(", ")),
        }
    }
}

/// Client-credentials scope decisions already made: (client, category, first party, scope).
type ScopeMemo = HashMap<(String, ClientCategory, bool, String), bool>;
/// Memoised client decisions beyond this many are dropped and made again.
const MAX_MEMO: usize = 50_000;

/// Where the running set came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum Origin {
    /// Compiled into the binary (the repository's `policies/` when it was built).
    BuiltIn,
    /// The folder named by `[policy] dir`.
    Dir { path: String },
    /// Loaded at run time and stored in the database (`policy_sets`), shared by every instance.
    Stored { seq: i64, loaded_by: String, reason: String, loaded_at: chrono::DateTime<chrono::Utc> },
}

impl Origin {
    /// The stored set's number, if the set came from the database.
    pub fn seq(&self) -> Option<i64> {
        match self {
            Self::Stored { seq, .. } => Some(*seq),
            _ => None,
        }
    }
}

/// The policy set a server runs, sliced by action.
pub struct ActiveSet {
    pub policies: Policies,
    pub version: String,
    pub origin: Origin,
    slices: HashMap<Act, PolicySet>,
    client_scopes: Mutex<ScopeMemo>,
}

impl ActiveSet {
    fn new(policies: Policies, origin: Origin) -> Self {
        let version = policies.version();
        let mut slices = HashMap::new();
        for &act in Act::ALL {
            let action = act.uid();
            let applies = |c: ActionConstraint| match c {
                ActionConstraint::Any => true,
                ActionConstraint::Eq(a) => a == action,
                ActionConstraint::In(list) => list.contains(&action),
            };
            let mut slice = PolicySet::new();
            for p in policies.set.policies() {
                if applies(p.action_constraint()) {
                    // Ids are unique in the whole set, so they are in a slice.
                    let _ = slice.add(p.clone());
                }
            }
            slices.insert(act, slice);
        }
        Self { policies, version, origin, slices, client_scopes: Mutex::new(HashMap::new()) }
    }
}

/// Organisation units as entities, by id.
type UnitCache = Mutex<HashMap<String, Entity>>;
/// Cached unit entities beyond this many are dropped and built again.
const MAX_UNITS: usize = 200_000;

/// The running set, swapped whole on reload.
pub struct PolicyEngine {
    active: ArcSwap<ActiveSet>,
    authorizer: Authorizer,
    units: UnitCache,
}

impl std::fmt::Debug for PolicyEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyEngine").field("version", &self.version()).finish_non_exhaustive()
    }
}

/// The entity type names, parsed once (parsing one costs more than a whole decision's
/// evaluation of a simple policy).
static TYPE_NAMES: std::sync::LazyLock<HashMap<&'static str, EntityTypeName>> =
    std::sync::LazyLock::new(|| {
        ["User", "Role", "OrgUnit", "Client", "Scope", "Factor", "PolicyStore", "Action"]
            .into_iter()
            .filter_map(|t| EntityTypeName::from_str(&format!("Pramaan::{t}")).ok().map(|n| (t, n)))
            .collect()
    });

fn type_name(t: &str) -> EntityTypeName {
    // The names are this module's constants, all valid Cedar names.
    TYPE_NAMES.get(t).cloned().unwrap_or_else(|| unreachable_type(t))
}

#[allow(clippy::panic)]
fn unreachable_type(t: &str) -> EntityTypeName {
    panic!("Pramaan::{t} is not a Cedar type name")
}

fn uid(t: &str, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(type_name(t), EntityId::new(id))
}

/// The entities of one request, each once. An entity that cannot be built marks the set
/// broken, and a request on a broken set is denied.
struct EntitySet<'a> {
    policies: &'a Policies,
    units: &'a UnitCache,
    seen: HashSet<EntityUid>,
    list: Vec<Entity>,
    broken: bool,
}

impl<'a> EntitySet<'a> {
    fn new(policies: &'a Policies, units: &'a UnitCache) -> Self {
        Self { policies, units, seen: HashSet::new(), list: Vec::new(), broken: false }
    }

    fn push(&mut self, e: Entity) {
        if self.seen.insert(e.uid()) {
            self.list.push(e);
        }
    }

    fn push_built(&mut self, e: Result<Entity, impl std::fmt::Display>) {
        match e {
            Ok(e) => self.push(e),
            Err(err) => {
                tracing::error!(error = %err, "a policy entity could not be built");
                self.broken = true;
            }
        }
    }

    fn org(&mut self, chain: &[OrgUnit]) -> Option<EntityUid> {
        for (i, unit) in chain.iter().enumerate() {
            // Units never change (no move, no rename of a path): each is built once.
            if let Some(e) = self.units.lock().unwrap_or_else(|p| p.into_inner()).get(unit.id.as_str()) {
                self.push(e.clone());
                continue;
            }
            let parents: HashSet<EntityUid> =
                chain.get(i + 1).map(|p| uid("OrgUnit", p.id.as_str())).into_iter().collect();
            let attrs = HashMap::from([
                ("kind".to_owned(), RestrictedExpression::new_string(unit.kind.clone())),
                ("path".to_owned(), RestrictedExpression::new_string(unit.path.as_str().to_owned())),
            ]);
            let built = Entity::new(uid("OrgUnit", unit.id.as_str()), attrs, parents);
            if let Ok(e) = &built {
                let mut cache = self.units.lock().unwrap_or_else(|p| p.into_inner());
                if cache.len() >= MAX_UNITS {
                    cache.clear();
                }
                cache.insert(unit.id.as_str().to_owned(), e.clone());
            }
            self.push_built(built);
        }
        chain.first().map(|u| uid("OrgUnit", u.id.as_str()))
    }

    fn person(&mut self, p: &Person) -> EntityUid {
        let me = uid("User", p.id.as_str());
        let org = self.org(&p.org);
        // The roles held and every role they include (roles.json): `principal in Role::"x"`
        // holds for all of them.
        let held = self.policies.effective_roles(p.roles.iter().map(RoleName::as_str));
        let mut parents: HashSet<EntityUid> = held.iter().map(|r| uid("Role", r)).collect();
        let mut attrs = HashMap::from([
            ("username".to_owned(), RestrictedExpression::new_string(p.username.clone())),
            ("active".to_owned(), RestrictedExpression::new_bool(p.active)),
        ]);
        if let Some(org) = org {
            parents.insert(org.clone());
            attrs.insert("org".to_owned(), RestrictedExpression::new_entity_uid(org));
        }
        self.push_built(Entity::new(me.clone(), attrs, parents));
        me
    }

    fn client(&mut self, c: ClientFacts<'_>) -> EntityUid {
        let me = uid("Client", c.id);
        let attrs = HashMap::from([
            ("category".to_owned(), RestrictedExpression::new_string(c.category.as_str().to_owned())),
            ("first_party".to_owned(), RestrictedExpression::new_bool(c.first_party)),
        ]);
        self.push_built(Entity::new(me.clone(), attrs, HashSet::new()));
        me
    }
}

fn login_record(l: &LoginFacts) -> RestrictedExpression {
    let amr =
        RestrictedExpression::new_set(l.amr.iter().map(|m| RestrictedExpression::new_string(m.clone())));
    RestrictedExpression::new_record([
        ("auth_age_secs".to_owned(), RestrictedExpression::new_long(l.auth_age_secs)),
        ("amr".to_owned(), amr),
    ])
    // Two distinct keys: cannot fail.
    .unwrap_or_else(|_| RestrictedExpression::new_bool(false))
}

impl PolicyEngine {
    pub fn new(policies: Policies, origin: Origin) -> Self {
        Self {
            active: ArcSwap::from_pointee(ActiveSet::new(policies, origin)),
            authorizer: Authorizer::new(),
            units: Mutex::new(HashMap::new()),
        }
    }

    /// The set decisions are made with now.
    pub fn current(&self) -> Arc<ActiveSet> {
        self.active.load_full()
    }

    pub fn version(&self) -> String {
        self.active.load().version.clone()
    }

    /// Replaces the running set (already validated) at once.
    pub fn replace(&self, policies: Policies, origin: Origin) {
        self.active.store(Arc::new(ActiveSet::new(policies, origin)));
    }

    /// One Cedar request. Fails closed: a request Cedar cannot build is denied, and so is one
    /// where a forbidding policy failed to evaluate (Cedar skips a policy that errors, which for
    /// a `forbid` would let the request through). `errored` says either happened.
    fn decide(
        &self,
        set: &ActiveSet,
        act: Act,
        principal: EntityUid,
        resource: EntityUid,
        context: Vec<(String, RestrictedExpression)>,
        entities: EntitySet<'_>,
    ) -> Verdict {
        let deny = |why: &str| {
            tracing::error!(action = act.name(), why, "a policy request could not be made; denied");
            Verdict {
                allowed: false,
                policies: Vec::new(),
                version: set.version.clone(),
                step_up: false,
                errored: true,
            }
        };
        if entities.broken {
            return deny("entity");
        }
        let Some(slice) = set.slices.get(&act) else { return deny("no slice") };
        let Ok(context) = Context::from_pairs(context) else { return deny("context") };
        // The values are typed by construction; checking them against the schema on every
        // request would double the cost (see `benches/policy.rs`).
        let Ok(request) = Request::new(principal, act.uid(), resource, context, None) else {
            return deny("request");
        };
        let Ok(entities) = Entities::from_entities(entities.list, None) else { return deny("entities") };
        let response = self.authorizer.is_authorized(&request, slice, &entities);
        let mut errored = false;
        let mut forbid_failed = false;
        for e in response.diagnostics().errors() {
            errored = true;
            let cedar_policy::AuthorizationError::PolicyEvaluationError(pe) = e;
            let id = pe.policy_id();
            forbid_failed |= slice.policy(id).is_none_or(|p| p.effect() == cedar_policy::Effect::Forbid);
            tracing::warn!(action = act.name(), policy = %id, error = %e, "a policy failed to evaluate");
        }
        let allowed = response.decision() == Decision::Allow && !forbid_failed;
        let step_up = !allowed
            && response
                .diagnostics()
                .reason()
                .any(|id| slice.policy(id).and_then(|p| p.annotation("problem")) == Some("step-up"));
        let mut policies: Vec<String> = response.diagnostics().reason().map(ToString::to_string).collect();
        policies.sort();
        Verdict { allowed, policies, version: set.version.clone(), step_up, errored }
    }

    /// May `person` receive `scope` through `client`?
    pub fn user_scope(&self, person: &Person, client: ClientFacts<'_>, scope: &Scope) -> Verdict {
        let set = self.current();
        let mut e = EntitySet::new(&set.policies, &self.units);
        let me = e.person(person);
        let c = e.client(client);
        let context = vec![("client".to_owned(), RestrictedExpression::new_entity_uid(c))];
        self.decide(&set, Act::ScopeUser, me, uid("Scope", scope.as_str()), context, e)
    }

    /// What of `requested` `person` may receive through `client`, in the order asked.
    pub fn user_scopes(&self, person: &Person, client: ClientFacts<'_>, requested: &[Scope]) -> Vec<Scope> {
        requested.iter().filter(|s| self.user_scope(person, client, s).allowed).cloned().collect()
    }

    /// May `client` receive `scope` by client credentials? Remembered per set, client and scope
    /// (a client's decision depends on nothing else), so the token endpoint pays for a decision
    /// once.
    pub fn client_scope(&self, client: ClientFacts<'_>, scope: &Scope) -> bool {
        let set = self.current();
        let key = (client.id.to_owned(), client.category, client.first_party, scope.as_str().to_owned());
        if let Some(&hit) = set.client_scopes.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return hit;
        }
        let mut e = EntitySet::new(&set.policies, &self.units);
        let me = e.client(client);
        let allowed =
            self.decide(&set, Act::ScopeClient, me, uid("Scope", scope.as_str()), Vec::new(), e).allowed;
        let mut memo = set.client_scopes.lock().unwrap_or_else(|p| p.into_inner());
        if memo.len() >= MAX_MEMO {
            memo.clear();
        }
        memo.insert(key, allowed);
        allowed
    }

    /// Which second factors `person`'s login needs: none, or one of those the policies let
    /// them use. When a factor is required and no kind is allowed, the authenticator app (a
    /// policy cannot leave a person unable to sign in at all).
    pub fn factors(&self, person: &Person) -> Requirement {
        let set = self.current();
        let ask = |act: Act, factor: &str| {
            let mut e = EntitySet::new(&set.policies, &self.units);
            let me = e.person(person);
            self.decide(&set, act, me, uid("Factor", factor), Vec::new(), e)
        };
        // A decision that could not be made in full requires a factor; so does a disabled account
        // (which cannot sign in anyway, and which the policies refuse everything).
        let required = ask(Act::FactorRequire, "any");
        if !required.allowed && !required.errored && person.active {
            return Requirement::None;
        }
        let usable: Vec<Factor> = [Factor::Totp, Factor::Sms]
            .into_iter()
            .filter(|f| ask(Act::FactorUse, f.as_str()).allowed)
            .collect();
        if usable.is_empty() { Requirement::OneOf(vec![Factor::Totp]) } else { Requirement::OneOf(usable) }
    }

    /// May `admin`, logged in as `login`, do `act` to `target`? A denial by a step-up policy
    /// is marked `step_up` only when the same request with a fresh login that used a one-time
    /// password would be allowed (RFC 9470: stepping up must change the answer).
    pub fn admin(&self, act: Act, admin: &Person, login: &LoginFacts, target: Target<'_>) -> Verdict {
        let set = self.current();
        let mut verdict = self.admin_on(&set, act, admin, login, target);
        if verdict.step_up {
            let fresh = LoginFacts { auth_age_secs: 0, amr: vec!["pwd".into(), "otp".into(), "mfa".into()] };
            verdict.step_up = self.admin_on(&set, act, admin, &fresh, target).allowed;
        }
        verdict
    }

    fn admin_on(
        &self,
        set: &ActiveSet,
        act: Act,
        admin: &Person,
        login: &LoginFacts,
        target: Target<'_>,
    ) -> Verdict {
        let mut e = EntitySet::new(&set.policies, &self.units);
        let me = e.person(admin);
        let mut context = vec![("login".to_owned(), login_record(login))];
        let resource = match target {
            Target::Person(p) => e.person(p),
            Target::Grant { role, to } => {
                let to = e.person(to);
                context.push(("target".to_owned(), RestrictedExpression::new_entity_uid(to)));
                let r = uid("Role", role.as_str());
                e.push(Entity::new_no_attrs(r.clone(), HashSet::new()));
                r
            }
            Target::Org(chain) => match e.org(chain) {
                Some(u) => u,
                None => return self.decide(set, act, me, uid("OrgUnit", ""), context, e),
            },
            Target::Client(c) => e.client(c),
            Target::Policies => {
                let store = uid("PolicyStore", "current");
                e.push(Entity::new_no_attrs(store.clone(), HashSet::new()));
                store
            }
        };
        self.decide(set, act, me, resource, context, e)
    }
}
