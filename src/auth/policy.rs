//! The one access policy: which objects a caller may see (else 404) and which functions a
//! role may use (else 403). Handlers ask it; they never decide themselves.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Technician,
    Supervisor,
    Admin,
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "technician" => Ok(Role::Technician),
            "supervisor" => Ok(Role::Supervisor),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "unknown role {other:?} (technician, supervisor, admin)"
            )),
        }
    }
}

/// Role-level capabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// Read routes, activities and resources within one's visibility.
    ReadField,
    /// Field writes as a technician (status, parts, uploads).
    FieldWrite,
    /// Approve or reject completed work.
    Decide,
    /// Queue, dead letters, audit, webhooks.
    Operate,
    /// Users and configuration.
    Administer,
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub user_id: String,
    pub username: String,
    pub name: String,
    pub role: Role,
    pub resource_id: Option<String>,
    pub oversees: Vec<String>,
    pub oversees_parent: Option<String>,
    pub device_id: String,
    pub family: String,
    /// The server's id of the request this caller made, for the audit trail.
    pub request_id: String,
    /// The caller's own request id, when it sent a safe one: audited beside the server's.
    pub client_request_id: Option<String>,
}

/// The resource hierarchy, for supervisors who oversee a parent.
pub trait Hierarchy {
    fn parent_of(&self, resource_id: &str) -> Option<String>;
}

/// Whether `resource_id` is `ancestor` or below it.
fn descends(h: &dyn Hierarchy, resource_id: &str, ancestor: &str) -> bool {
    let mut current = Some(resource_id.to_string());
    for _ in 0..32 {
        match current {
            Some(ref r) if r == ancestor => return true,
            Some(ref r) => current = h.parent_of(r),
            None => return false,
        }
    }
    false
}

/// A refusal; 404 hides existence, 403 names a function the role lacks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("not found")]
    NotFound,
    #[error("this role may not use {0}")]
    Forbidden(&'static str),
}

pub fn may_use(p: &Principal, f: Function) -> Result<(), Denied> {
    let ok = match f {
        Function::ReadField => true,
        Function::FieldWrite => matches!(p.role, Role::Technician | Role::Supervisor),
        Function::Decide | Function::Operate => matches!(p.role, Role::Supervisor | Role::Admin),
        Function::Administer => p.role == Role::Admin,
    };
    if ok {
        Ok(())
    } else {
        Err(Denied::Forbidden(match f {
            Function::ReadField => "reading field data",
            Function::FieldWrite => "field writes",
            Function::Decide => "approval decisions",
            Function::Operate => "operations functions",
            Function::Administer => "administration",
        }))
    }
}

/// Whether the caller oversees `resource_id` (supervisors) or is an admin.
pub fn oversees(p: &Principal, resource_id: &str, h: &dyn Hierarchy) -> bool {
    match p.role {
        Role::Admin => true,
        Role::Supervisor => {
            p.oversees.iter().any(|r| r == resource_id)
                || p.oversees_parent
                    .as_deref()
                    .is_some_and(|parent| parent != resource_id && descends(h, resource_id, parent))
        }
        Role::Technician => false,
    }
}

/// May the caller see the objects (route, activities, uploads, ops) of `resource_id`?
pub fn may_see(p: &Principal, resource_id: &str, h: &dyn Hierarchy) -> Result<(), Denied> {
    let own = p.resource_id.as_deref() == Some(resource_id);
    if own || oversees(p, resource_id, h) {
        Ok(())
    } else {
        Err(Denied::NotFound)
    }
}

/// May the caller decide on completed work of `resource_id`? Never on their own work.
pub fn may_decide(p: &Principal, resource_id: &str, h: &dyn Hierarchy) -> Result<(), Denied> {
    may_use(p, Function::Decide)?;
    may_see(p, resource_id, h)?;
    if p.resource_id.as_deref() == Some(resource_id) {
        return Err(Denied::Forbidden("deciding on one's own work"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Tree(HashMap<&'static str, &'static str>);
    impl Hierarchy for Tree {
        fn parent_of(&self, r: &str) -> Option<String> {
            self.0.get(r).map(|s| s.to_string())
        }
    }

    fn tree() -> Tree {
        Tree(HashMap::from([
            ("tech1", "east"),
            ("tech2", "east"),
            ("east", "org"),
            ("tech9", "west"),
            ("west", "org"),
            ("lead", "east"),
        ]))
    }

    fn who(
        role: Role,
        resource: Option<&str>,
        oversees: &[&str],
        parent: Option<&str>,
    ) -> Principal {
        Principal {
            user_id: "u".into(),
            username: "u".into(),
            name: "U".into(),
            role,
            resource_id: resource.map(str::to_string),
            oversees: oversees.iter().map(|s| s.to_string()).collect(),
            oversees_parent: parent.map(str::to_string),
            device_id: "d".into(),
            family: "f".into(),
            request_id: "r".into(),
            client_request_id: None,
        }
    }

    #[test]
    fn technicians_see_only_their_own_resource() {
        let t = who(Role::Technician, Some("tech1"), &[], None);
        assert_eq!(may_see(&t, "tech1", &tree()), Ok(()));
        assert_eq!(may_see(&t, "tech2", &tree()), Err(Denied::NotFound));
        assert!(matches!(
            may_decide(&t, "tech1", &tree()),
            Err(Denied::Forbidden(_))
        ));
    }

    #[test]
    fn supervisors_by_list_or_by_parent() {
        let listed = who(Role::Supervisor, None, &["tech1"], None);
        assert_eq!(may_see(&listed, "tech1", &tree()), Ok(()));
        assert_eq!(may_see(&listed, "tech2", &tree()), Err(Denied::NotFound));
        let by_parent = who(Role::Supervisor, Some("lead"), &[], Some("east"));
        assert_eq!(may_see(&by_parent, "tech2", &tree()), Ok(()));
        assert_eq!(may_see(&by_parent, "tech9", &tree()), Err(Denied::NotFound));
        assert_eq!(may_decide(&by_parent, "tech2", &tree()), Ok(()));
        assert_eq!(
            may_decide(&by_parent, "lead", &tree()),
            Err(Denied::Forbidden("deciding on one's own work"))
        );
        assert_eq!(
            may_decide(&by_parent, "tech9", &tree()),
            Err(Denied::NotFound)
        );
    }

    #[test]
    fn admins_operate_but_do_not_do_field_work() {
        let a = who(Role::Admin, None, &[], None);
        assert_eq!(may_see(&a, "tech9", &tree()), Ok(()));
        assert_eq!(may_use(&a, Function::Administer), Ok(()));
        assert!(may_use(&a, Function::FieldWrite).is_err());
        assert!(may_use(
            &who(Role::Supervisor, None, &["x"], None),
            Function::Administer
        )
        .is_err());
    }
}
