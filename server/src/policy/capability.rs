//! Authorization as a value: an administrative change can only be made with a
//! [`Capability`], and only [`PolicyEngine::authorize`] makes one, from a permitting decision
//! about one administrator, one action and one target. The functions that change things take
//! the capability and read the target from it, so a decision about one account cannot be spent
//! on another.

use std::marker::PhantomData;

use super::engine::{Act, LoginFacts, Person, PolicyEngine, Target, Verdict};
use crate::domain::{ClientId, OrgUnitId, RoleName, UserId};

/// An administrative action, as a type.
pub trait AdminAction {
    const ACT: Act;
}

macro_rules! admin_actions {
    ($($(#[$doc:meta])* $name:ident => $act:ident),+ $(,)?) => {
        $(
            $(#[$doc])*
            #[derive(Debug)]
            pub struct $name;
            impl AdminAction for $name {
                const ACT: Act = Act::$act;
            }
        )+
    };
}

admin_actions!(
    /// Read one account.
    ReadUser => UserRead,
    /// List the accounts of an organisation unit's subtree.
    ListUsers => UserList,
    CreateUser => UserCreate,
    UpdateUser => UserUpdate,
    DisableUser => UserDisable,
    EnableUser => UserEnable,
    ResetFactors => FactorsReset,
    RevokeSessions => SessionsRevoke,
    /// Grant a role to an account, or take it away.
    AssignRole => RoleAssign,
    ReadAudit => AuditRead,
    LaunchCampaign => CampaignLaunch,
    /// Create an organisation unit under one.
    ManageOrg => OrgManage,
    ReadClient => ClientRead,
    ManageClient => ClientManage,
    SuspendClients => ClientSuspendBulk,
    /// Read the policy set in force.
    ReadPolicy => PolicyRead,
    /// Load a new policy set.
    ManagePolicy => PolicyManage,
);

/// What a decision was about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    User(UserId),
    Role { role: RoleName, user: UserId },
    Org(Option<OrgUnitId>),
    Client(ClientId),
    Policies,
}

/// Proof that the policies let `admin` do `A` to one subject. It cannot be built outside
/// this module, cloned, or pointed at another subject.
#[derive(Debug)]
pub struct Capability<A: AdminAction> {
    admin: UserId,
    subject: Subject,
    verdict: Verdict,
    _action: PhantomData<A>,
}

impl<A: AdminAction> Capability<A> {
    /// Who may act.
    pub fn admin(&self) -> &UserId {
        &self.admin
    }

    pub fn subject(&self) -> &Subject {
        &self.subject
    }

    /// The account the decision was about (for account actions and role grants).
    pub fn user(&self) -> Option<&UserId> {
        match &self.subject {
            Subject::User(u) | Subject::Role { user: u, .. } => Some(u),
            _ => None,
        }
    }

    /// The decision, for the audit trail.
    pub fn verdict(&self) -> &Verdict {
        &self.verdict
    }
}

/// A refused decision, for the caller and the audit trail.
#[derive(Debug, Clone)]
pub struct Denied {
    pub act: Act,
    pub subject: Subject,
    pub verdict: Verdict,
}

impl PolicyEngine {
    /// Asks the policies whether `admin`, logged in as `login`, may do `A` to `target`, and
    /// returns the capability to do it.
    pub fn authorize<A: AdminAction>(
        &self,
        admin: &Person,
        login: &LoginFacts,
        target: Target<'_>,
    ) -> Result<Capability<A>, Denied> {
        let subject = match target {
            Target::Person(p) => Subject::User(p.id.clone()),
            Target::Grant { role, to } => Subject::Role { role: role.clone(), user: to.id.clone() },
            Target::Org(chain) => Subject::Org(chain.first().map(|u| u.id.clone())),
            Target::Client(c) => Subject::Client(ClientId::from_string(c.id.to_owned())),
            Target::Policies => Subject::Policies,
        };
        let verdict = self.admin(A::ACT, admin, login, target);
        if verdict.allowed {
            Ok(Capability { admin: admin.id.clone(), subject, verdict, _action: PhantomData })
        } else {
            Err(Denied { act: A::ACT, subject, verdict })
        }
    }
}
